"""Fill-mask association probe: increased log probability (Kurita et al., 2019).

For a template such as ``"{person} works as a {mask}."``, a group word ``g`` ("she", "my father") and a
target word ``w`` ("nurse") scored at ``{mask}``:

``score(w, g) = log p_target - log p_prior``

* masked LMs: ``p_target = P([MASK] = w | "she works as a [MASK].")`` and
  ``p_prior = P([MASK]_2 = w | "[MASK] works as a [MASK]_2.")``: the group slot is masked too, so the
  prior is what the model expects at the target position without knowing the group (Kurita et al.'s
  increased log probability, with the scored word at ``{mask}`` and the group as the conditioning word);
* causal LMs cannot look at a later mask, so each candidate sentence is scored whole
  (``log P(sentence)``) and normalised over the target set: ``p_target = P(w | sentence, w in targets)
  = softmax_w log P(template filled with g and w)``; the prior replaces the group with a neutral
  placeholder (``neutral``, default "the person") and is normalised the same way. Same quantity (how
  much the group word raises the target's probability), different mechanism: the numbers of a masked
  and a causal model are not on the same scale.

Priors are shared by every group word and computed once per (template, target).

Comparing groups ``A`` and ``B`` (two groups of the group lexicon): per target ``w``,
``gap(w) = mean score(w, g in A) - mean score(w, g in B)`` (the mean over A's group words of each word's
mean over templates).
When the targets come in two groups ``X`` and ``Y`` (e.g. male- and female-dominated occupations),
``bias_score = mean_{w in X} gap(w) - mean_{w in Y} gap(w)`` (positive: A is tied to X and B to Y more
than the other way round), ``effect_size`` is that difference divided by the standard deviation of
``gap`` over ``X ∪ Y`` (ddof=1; WEAT's Cohen's-d form), and ``p_value`` is the one-sided permutation
p-value of ``bias_score`` over splits of the group words into A and B together with splits of the
targets into X and Y (under "no association" both word lists are exchangeable). With ungrouped targets ``bias_score`` is the mean
gap and there is no effect size. The 95% intervals of ``bias_score`` and ``effect_size`` are percentile
bootstrap intervals that resample the group words of A and of B and the targets of X and of Y (a
crossed design: the number generalises over both word lists, so both are sampling sources); the
``by_group`` intervals resample targets.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, SectionResult
from raikit.audits.sections import RunContext, Section
from raikit.fairness.seat import ASSOCIATION_RULE
from raikit.audits.stats import bootstrap_ci
from raikit.fairness.templates import (
    Lexicon,
    Template,
    expand,
    fill,
    load_configured,
    pick_two_groups,
)

__all__ = ["SECTION", "FillMaskOptions", "FillMaskResult", "fill_mask_bias", "association_scores", "check_inputs",
           "CITATION"]

CITATION = ("Kurita, K., Vyas, N., Pareek, A., Black, A. W., Tsvetkov, Y. (2019). Measuring Bias in "
            "Contextualized Word Representations. 1st Workshop on Gender Bias in NLP, ACL.")
_GROUP_MARK = "\x00G\x00"
_MASK_MARK = "\x00M\x00"


def _two_way_ci(a_rows: np.ndarray, b_rows: np.ndarray, x_cols: np.ndarray, y_cols: np.ndarray | None,
                statistic: Any, *, n_resamples: int, seed: int) -> tuple[float, float] | None:
    """Percentile bootstrap CI resampling group words and target words together (a crossed design).

    ``a_rows``/``b_rows`` are the (group word x target) mean scores of the two groups. Each replicate
    resamples the words of group A, of group B, and the targets of X (and Y) with replacement, recomputes
    ``gap`` per target, and applies ``statistic(gap_x, gap_y, axis=-1)`` (``statistic(gap_x, axis=-1)``
    without target groups). Resampling the group words as well as the targets makes the interval say how
    much the number depends on both word lists, not on the targets alone. Resampling both ways counts the
    word x target interaction twice, so the interval errs on the wide side (McCullagh 2000); a group of
    one word reduces it to the bootstrap over targets.
    """
    if len(x_cols) < 2 or (y_cols is not None and len(y_cols) < 2):
        return None
    rng = np.random.default_rng(seed)
    n = n_resamples

    def resampled_mean(rows: np.ndarray) -> np.ndarray:  # (n, targets): how often each word is drawn, as weights
        counts = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=n)
        return counts @ rows / len(rows)

    gap = resampled_mean(a_rows) - resampled_mean(b_rows)  # (n, targets)
    rows = np.arange(n)[:, None]
    gx = gap[rows, x_cols[rng.integers(0, len(x_cols), (n, len(x_cols)))]]
    if y_cols is None:
        values = statistic(gx, axis=-1)
    else:
        values = statistic(gx, gap[rows, y_cols[rng.integers(0, len(y_cols), (n, len(y_cols)))]], axis=-1)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return (float(low), float(high))


def _contrasts(n_first: int, n_second: int, picks: np.ndarray | None) -> np.ndarray:
    """Rows ``1_first / n_first - 1_second / n_second`` for every split (or the given ``picks`` of first members)."""
    n = n_first + n_second
    if picks is None:
        picks = np.array(list(itertools.combinations(range(n), n_first)), dtype=np.int64).reshape(-1, n_first)
    first = np.zeros((len(picks), n), dtype=bool)
    np.put_along_axis(first, picks, True, axis=1)
    return np.where(first, 1.0 / n_first, -1.0 / n_second)


def _crossed_p_value(s_ab: np.ndarray, n_a: int, s_xy_cols: np.ndarray, n_x: int, *, n_resamples: int,
                     seed: int) -> tuple[float, str]:
    """One-sided permutation p-value of ``bias_score`` splitting group words and targets at the same time.

    ``s_ab`` holds the (group word x target) mean scores, A's words first; ``s_xy_cols`` orders its
    columns X first. ``bias_score = u' S v`` with ``u`` the A-minus-B mean contrast over words and ``v`` the
    X-minus-Y contrast over targets; under "no association" both word lists are exchangeable, so the
    null distribution takes every (word split, target split) pair: exact when there are at most
    ``n_resamples`` pairs, otherwise ``n_resamples`` random pairs plus the observed one.
    """
    s = s_ab[:, s_xy_cols]
    n_rows, n_cols = s.shape
    observed = float((_contrasts(n_a, n_rows - n_a, np.arange(n_a)[None]) @ s
                      @ _contrasts(n_x, n_cols - n_x, np.arange(n_x)[None]).T)[0, 0])
    tol = 1e-12 * max(1.0, abs(observed))
    n_pairs = math.comb(n_rows, n_a) * math.comb(n_cols, n_x)
    if n_pairs <= n_resamples:
        values = _contrasts(n_a, n_rows - n_a, None) @ s @ _contrasts(n_x, n_cols - n_x, None).T
        return float((values >= observed - tol).mean()), f"exact ({n_pairs} word and target splits)"
    rng = np.random.default_rng(seed)
    rows = rng.permuted(np.tile(np.arange(n_rows), (n_resamples, 1)), axis=1)[:, :n_a]
    cols = rng.permuted(np.tile(np.arange(n_cols), (n_resamples, 1)), axis=1)[:, :n_x]
    values = ((_contrasts(n_a, n_rows - n_a, rows) @ s) * _contrasts(n_x, n_cols - n_x, cols)).sum(axis=1)
    hits = int((values >= observed - tol).sum()) + 1
    return hits / (n_resamples + 1), f"sampled ({n_resamples} of {n_pairs} word and target splits)"


def _diff_means(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _cohens_d(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    pooled = np.concatenate([x, y], axis=axis)
    sd = np.std(pooled, axis=axis, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.mean(x, axis=axis) - np.mean(y, axis=axis)) / sd


def _expand_rows(values: np.ndarray, unique: list[str], items: list[str], width: int) -> np.ndarray:
    """Rows of ``values`` (one per unique string) repeated to follow ``items`` (a constant-time lookup each)."""
    if not items:
        return np.zeros((0, width))
    position = {text: i for i, text in enumerate(unique)}
    return values[[position[t] for t in items]]


def _check_templates(templates: Sequence[Template], lexicons: Mapping[str, Lexicon], *, group_slot: str,
                     targets: str | None) -> str:
    """The target lexicon's name, after checking every template has the group slot and ``{mask}``."""
    for tpl in templates:
        if group_slot not in tpl.slots or not tpl.has_mask:
            raise RaikitInputError(f"template {tpl.id!r} needs the group slot {{{group_slot}}} and a {{mask}} slot")
    target_name = targets or next((t.targets for t in templates if t.targets), None)
    if target_name is None or target_name not in lexicons:
        raise RaikitInputError(f"target lexicon {target_name!r} not found; known: {', '.join(sorted(lexicons))}")
    return target_name


def check_inputs(templates: Sequence[Template], lexicons: Mapping[str, Lexicon], *, group_slot: str = "person",
                 targets: str | None = None, groups: Sequence[str] = (),
                 target_groups: Sequence[str] = ()) -> tuple[str, tuple[str, str], tuple[str, str] | None]:
    """Check templates and lexicons for the probe (no model needed).

    Returns
    -------
    (target lexicon name, the two groups, the two target groups or None)

    Raises
    ------
    RaikitInputError
        For a template without the group slot or ``{mask}``, a missing group or target lexicon, or
        groups that are not two of the lexicon's groups.
    """
    target_name = _check_templates(templates, lexicons, group_slot=group_slot, targets=targets)
    if group_slot not in lexicons:
        raise RaikitInputError(f"group lexicon {group_slot!r} not found; known: {', '.join(sorted(lexicons))}")
    chosen = pick_two_groups(lexicons[group_slot], groups, key="groups")
    target_lex = lexicons[target_name]
    tgroups = None
    if target_lex.grouped and len(target_lex.groups) >= 2:
        tgroups = pick_two_groups(target_lex, target_groups, key="target_groups")
    return target_name, chosen, tgroups


def _joint_instances(templates: Sequence[Template], lexicons: Mapping[str, Lexicon], *, group_slot: str,
                     max_instances: int | None, seed: int) -> pd.DataFrame:
    """Template instances; with ``max_instances``, one seeded subsample of group words shared by every template.

    Subsampling each template on its own would give each group a different mix of templates, so a group
    gap would partly be a template gap. Here the group words are subsampled once, stratified by group (each
    group keeps its share of the ``max_instances`` words, at least one), and every template is filled with
    those same words; other slots are expanded in full. ``attrs["n_total"]`` is the instance count
    without subsampling.
    """
    full = expand(templates, lexicons, mask=_MASK_MARK)
    lex = lexicons[group_slot]
    if max_instances is None or max_instances >= len(lex.words):
        return full
    if max_instances < 1:
        raise RaikitInputError(f"max_instances must be at least 1, got {max_instances}")
    rng = np.random.default_rng(seed)
    total = len(lex.words)
    kept: dict[str, tuple[str, ...]] = {}
    for g, words in lex.groups.items():
        k = min(len(words), max(1, round(max_instances * len(words) / total)))
        kept[g] = tuple(words[int(i)] for i in np.sort(rng.choice(len(words), size=k, replace=False)))
    reduced = dict(lexicons)
    reduced[group_slot] = Lexicon(name=lex.name, groups=kept, source=lex.source)
    inst = expand(templates, reduced, mask=_MASK_MARK)
    inst.attrs["n_total"] = full.attrs.get("n_total", len(full))
    inst.attrs["group_words"] = {g: list(ws) for g, ws in kept.items()}
    return inst


def association_scores(adapter: Any, templates: Sequence[Template], lexicons: Mapping[str, Lexicon], *,
                       group_slot: str = "person", targets: str | None = None, neutral: str = "the person",
                       max_instances: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Increased log probability of every target word for every filled template.

    Parameters
    ----------
    adapter : MaskedLMAdapter or CausalLMAdapter
    templates : sequence of Template
        Each has the group slot and one ``{mask}``.
    lexicons : mapping of str to Lexicon
        Must hold the group lexicon and the target lexicon.
    group_slot : str
        The slot (and lexicon) of the group words.
    targets : str, optional
        The lexicon of the words scored at ``{mask}``; each template's ``targets`` otherwise.
    neutral : str
        Causal LMs: the placeholder standing for "no group" in the prior.

    Returns
    -------
    DataFrame
        One row per (instance, target): ``template_id``, ``text`` (the instance with ``{mask}``),
        ``group``, ``group_word``, ``target``, ``target_group``, ``log_p``, ``log_prior``, ``score``.
    """
    kind = getattr(adapter, "kind", None)
    if kind not in ("masked_lm", "causal_lm"):
        raise RaikitInputError(f"the fill-mask probe needs a masked_lm or causal_lm model; "
                               f"{getattr(adapter, 'name', 'model')!r} is {kind!r}")
    target_name = _check_templates(templates, lexicons, group_slot=group_slot, targets=targets)
    target_lex = lexicons[target_name]
    target_pairs = target_lex.pairs()
    target_words = [w for w, _ in target_pairs]
    inst = _joint_instances(templates, lexicons, group_slot=group_slot, max_instances=max_instances, seed=seed)
    tpl_by_id = {t.id: t for t in templates}
    slot_cols = {t.id: t.slots for t in templates}
    prior_texts = []
    for row in inst.itertuples(index=False):
        values = {s: getattr(row, s) for s in slot_cols[row.template_id]}
        values[group_slot] = _GROUP_MARK
        prior_texts.append(fill(tpl_by_id[row.template_id].text, values, mask=_MASK_MARK))
    inst = inst.assign(prior_text=prior_texts)
    unique_priors = list(dict.fromkeys(prior_texts))
    n_t = len(target_words)
    texts = inst["text"].tolist()

    unique_texts = list(dict.fromkeys(texts))
    if kind == "masked_lm":
        mask = adapter.mask_token
        logp_u = adapter.fill_mask([t.replace(_MASK_MARK, mask) for t in unique_texts], target_words)
        order = [int(p.index(_GROUP_MARK) < p.index(_MASK_MARK)) for p in unique_priors]
        prior_u = adapter.fill_mask([p.replace(_GROUP_MARK, mask).replace(_MASK_MARK, mask) for p in unique_priors],
                                    target_words, mask_index=order)
    else:
        def normalised(frames: list[str], group_fill: str | None) -> np.ndarray:
            sentences = []
            for f in frames:
                base = f
                if group_fill is not None:
                    base = base.replace(_GROUP_MARK, group_fill)
                    if f.startswith(_GROUP_MARK):
                        base = base[:1].upper() + base[1:]
                sentences.extend(base.replace(_MASK_MARK, w) for w in target_words)
            ll = adapter.sentence_log_likelihood(sentences).reshape(len(frames), n_t) if sentences else np.zeros((0, n_t))
            return ll - special.logsumexp(ll, axis=1, keepdims=True)

        logp_u = normalised(unique_texts, None)
        prior_u = normalised(unique_priors, neutral)
    logp = _expand_rows(logp_u, unique_texts, texts, n_t)
    prior = _expand_rows(prior_u, unique_priors, prior_texts, n_t)

    n = len(inst)
    frame = pd.DataFrame({
        "template_id": np.repeat(inst["template_id"].to_numpy(), n_t),
        "text": np.repeat(np.array([t.replace(_MASK_MARK, "{mask}") for t in texts], dtype=object), n_t),
        "group": np.repeat(inst[f"{group_slot}_group"].to_numpy(), n_t),
        "group_word": np.repeat(inst[group_slot].to_numpy(), n_t),
        "target": np.tile(np.array(target_words, dtype=object), n),
        "target_group": np.tile(np.array([g for _, g in target_pairs], dtype=object), n),
        "log_p": logp.reshape(-1),
        "log_prior": prior.reshape(-1),
    })
    frame["score"] = frame["log_p"] - frame["log_prior"]
    frame.attrs["n_total"] = inst.attrs.get("n_total", n)
    frame.attrs["group_words"] = inst.attrs.get("group_words", {})
    return frame


@dataclass(frozen=True)
class FillMaskResult:
    """Result of :func:`fill_mask_bias`.

    Attributes
    ----------
    scores : DataFrame
        Per (instance, target) scores (see :func:`association_scores`).
    by_target : DataFrame
        Per target: ``target``, ``target_group``, mean score of each group, ``gap`` (A minus B).
    groups : tuple of str
        The contrasted groups ``(A, B)``.
    target_groups : tuple of str or None
        The contrasted target groups ``(X, Y)``, or None for ungrouped targets.
    bias_score, bias_ci : float, tuple or None
    effect_size, effect_ci, p_value : float (NaN when targets are ungrouped), tuple or None, float
    by_group : dict of str to float
        Mean score of every group of the group lexicon.
    top_k : DataFrame
        The model's own top-k words at ``{mask}`` per group word and template.
    notes : tuple of str
    """

    scores: pd.DataFrame
    by_target: pd.DataFrame
    groups: tuple[str, str]
    target_groups: tuple[str, str] | None
    bias_score: float
    bias_ci: tuple[float, float] | None
    effect_size: float
    effect_ci: tuple[float, float] | None
    p_value: float
    by_group: dict[str, float]
    by_group_ci: dict[str, tuple[float, float] | None]
    top_k: pd.DataFrame
    p_method: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def n_targets(self) -> int:
        """Number of target words behind the headline numbers."""
        return int(len(self.by_target))

    def to_section(self) -> SectionResult:
        """The section result: ``bias_score``, ``effect_size``, ``p_value``, ``by_group.<g>``."""
        a, b = self.groups
        common = {"groups": [a, b], "target_groups": list(self.target_groups or ()), "citation": CITATION}
        metrics = {"bias_score": Metric(self.bias_score, self.bias_ci, self.n_targets,
                                        {**common, "p_value": self.p_value})}
        if self.target_groups is not None:
            metrics["effect_size"] = Metric(self.effect_size, self.effect_ci, self.n_targets,
                                            {**common, "p_value": self.p_value})
            metrics["p_value"] = Metric(self.p_value, None, self.n_targets,
                                        {**common, "test": "one-sided permutation over group-word and target "
                                                           f"splits, {self.p_method}"})
        for g, v in self.by_group.items():
            metrics[f"by_group.{g}"] = Metric(v, self.by_group_ci.get(g), self.n_targets,
                                              {"what": "mean increased log probability over templates, "
                                                       "group words and targets"})
        top = (self.top_k.groupby(["group", "token"]).size().rename("count").reset_index()
               .sort_values(["group", "count"], ascending=[True, False]))
        details = {"top_k_by_group": {g: sub.head(10)[["token", "count"]].to_dict("records")
                                      for g, sub in top.groupby("group")},
                   "groups": [a, b], "target_groups": list(self.target_groups or ())}
        return SectionResult(metrics=metrics, tables={"scores": self.scores, "by_target": self.by_target,
                                                      "top_k": self.top_k},
                             details=details, notes=self.notes)


def _top_k(adapter: Any, frame: pd.DataFrame, k: int) -> pd.DataFrame:
    inst = frame.drop_duplicates("text")[["template_id", "text", "group", "group_word"]]
    texts = inst["text"].tolist()
    if adapter.kind == "masked_lm":
        tops = adapter.top_k([t.replace("{mask}", adapter.mask_token) for t in texts], k=k)
    else:
        tops = adapter.next_token_top_k([t.split("{mask}")[0].rstrip() for t in texts], k=k)
    rows = [{"template_id": r.template_id, "group": r.group, "group_word": r.group_word, "rank": j + 1,
             "token": tok.strip(), "log_prob": lp}
            for r, top in zip(inst.itertuples(index=False), tops) for j, (tok, lp) in enumerate(top)]
    return pd.DataFrame(rows, columns=["template_id", "group", "group_word", "rank", "token", "log_prob"])


def fill_mask_bias(adapter: Any, *, templates: Sequence[Template], lexicons: Mapping[str, Lexicon],
                   group_slot: str = "person", targets: str | None = None, groups: Sequence[str] = (),
                   target_groups: Sequence[str] = (), neutral: str = "the person", top_k: int = 5,
                   max_instances: int | None = None, seed: int = 0, n_bootstrap: int = 2000,
                   n_permutations: int = 10000) -> FillMaskResult:
    """Kurita et al.'s increased-log-probability association, compared between two groups.

    Parameters
    ----------
    adapter : MaskedLMAdapter or CausalLMAdapter
    templates, lexicons
        See :func:`association_scores`.
    groups : two str, optional
        The groups of the group lexicon to contrast (default its first two).
    target_groups : two str, optional
        The groups of the target lexicon to contrast (default its first two, if it is grouped).
    top_k : int
        How many of the model's own completions to keep per group word and template.
    seed, n_bootstrap, n_permutations
        Randomness and sizes of the bootstrap and permutation test.

    Returns
    -------
    FillMaskResult
    """
    _, chosen, tgroups = check_inputs(templates, lexicons, group_slot=group_slot, targets=targets, groups=groups,
                                      target_groups=target_groups)
    frame = association_scores(adapter, templates, lexicons, group_slot=group_slot, targets=targets,
                               neutral=neutral, max_instances=max_instances, seed=seed)
    all_groups = list(lexicons[group_slot].groups)
    # per group word: mean score over its template instances; per group: mean over its words
    by_word = frame.pivot_table(index=["group", "group_word"], columns="target", values="score", aggfunc="mean",
                                sort=False)
    target_order = list(dict.fromkeys(frame["target"]))
    by_word = by_word[target_order]
    per_target = pd.DataFrame({"target": target_order,
                               "target_group": frame.drop_duplicates("target").set_index("target")
                               .loc[target_order, "target_group"].to_numpy()})
    missing = [g for g in chosen if g not in set(frame["group"])]
    if missing:
        raise RaikitInputError(f"group {missing[0]!r} of lexicon {group_slot!r} has no scored instance; "
                               "raise max_items")
    for g in dict.fromkeys(frame["group"]):
        per_target[g] = by_word.loc[g].mean(axis=0).to_numpy()
    per_target["gap"] = per_target[chosen[0]] - per_target[chosen[1]]
    a_rows, b_rows = (by_word.loc[g].to_numpy(dtype=float) for g in chosen)
    notes: list[str] = []
    n_total = frame.attrs.get("n_total", 0)
    n_inst = frame["text"].nunique()
    if n_total > n_inst:
        notes.append(f"fill_mask: a fixed random subsample of {n_inst} of {n_total} template instances was scored: "
                     f"the same {sum(len(w) for w in frame.attrs.get('group_words', {}).values()) or 'subsampled'} "
                     "group words in every template "
                     f"(seed {seed}).")
    gap = per_target["gap"].to_numpy(dtype=float)
    if tgroups is not None:
        x_cols = np.flatnonzero(per_target["target_group"].to_numpy() == tgroups[0])
        y_cols = np.flatnonzero(per_target["target_group"].to_numpy() == tgroups[1])
        x, y = gap[x_cols], gap[y_cols]
        bias = float(x.mean() - y.mean())
        bias_ci = _two_way_ci(a_rows, b_rows, x_cols, y_cols, _diff_means, n_resamples=n_bootstrap, seed=seed)
        effect = float(_cohens_d(x, y))
        effect_ci = _two_way_ci(a_rows, b_rows, x_cols, y_cols, _cohens_d, n_resamples=n_bootstrap, seed=seed)
        p, p_method = _crossed_p_value(np.concatenate([a_rows, b_rows]), len(a_rows),
                                       np.concatenate([x_cols, y_cols]), len(x_cols), n_resamples=n_permutations,
                                       seed=seed)
    else:
        bias = float(gap.mean())
        bias_ci = _two_way_ci(a_rows, b_rows, np.arange(len(gap)), None, np.mean, n_resamples=n_bootstrap, seed=seed)
        effect, effect_ci, p, p_method = float("nan"), None, float("nan"), ""
        notes.append("fill_mask: the target lexicon has no two groups, so there is no effect size or p-value; "
                     "bias_score is the mean gap over targets.")
    by_group: dict[str, float] = {}
    by_group_ci: dict[str, tuple[float, float] | None] = {}
    for g in all_groups:
        if g in per_target:
            vals = per_target[g].to_numpy(dtype=float)
            by_group[g] = float(vals.mean())
            by_group_ci[g] = bootstrap_ci(vals, n_resamples=n_bootstrap, seed=seed)
    return FillMaskResult(scores=frame, by_target=per_target, groups=(chosen[0], chosen[1]), target_groups=tgroups,
                          bias_score=bias, bias_ci=bias_ci, effect_size=effect, effect_ci=effect_ci, p_value=p,
                          by_group=by_group, by_group_ci=by_group_ci, top_k=_top_k(adapter, frame, top_k),
                          p_method=p_method, notes=tuple(notes))


@dataclass(frozen=True)
class FillMaskOptions:
    """Options of ``[fairness.fill_mask]``.

    Attributes
    ----------
    templates : str
        Template file (TOML/CSV); ``builtin:templates/fill_mask.toml`` is raikit's starter set.
    lexicons : list of str
        Lexicon files holding the group lexicon and the target lexicon.
    group_slot : str
        Slot/lexicon of the group words.
    targets : str
        Lexicon of the words scored at ``{mask}`` ("" = each template's ``targets``).
    groups : list of str
        The two groups of the ``group_slot`` lexicon to contrast, e.g. ``["female", "male"]`` ([]: its
        first two).
    target_groups : list of str
        The two groups of the target lexicon whose scores are compared, e.g. ``["male_dominated",
        "female_dominated"]`` ([]: its
        first two).
    neutral : str
        Causal LMs: the "no group" placeholder of the prior.
    top_k : int
        Model completions kept per group word and template.
    max_items : int
        Group words per template: beyond it, one seeded subsample of the group words (stratified by
        group) is used for every template, so every group is scored on the same templates (formerly
        ``max_instances``).
    n_bootstrap : int
        Bootstrap resamples of the 95% confidence intervals.
    n_permutations : int
        Permutations of the test of the bias score (its p-value).
    """

    templates: str = "builtin:templates/fill_mask.toml"
    lexicons: list[str] = field(default_factory=lambda: ["builtin:lexicons/gender.toml",
                                                         "builtin:lexicons/occupations.toml"])
    group_slot: str = "person"
    targets: str = ""
    groups: list[str] = field(default_factory=list)
    target_groups: list[str] = field(default_factory=list)
    neutral: str = "the person"
    top_k: int = 5
    max_items: int = 2000
    n_bootstrap: int = 2000
    n_permutations: int = 10000


def _check(options: FillMaskOptions, ctx: RunContext) -> None:
    templates, lexicons = load_configured(options.templates, options.lexicons, ctx, section="fill_mask")
    check_inputs(templates, lexicons, group_slot=options.group_slot, targets=options.targets or None,
                 groups=options.groups, target_groups=options.target_groups)


def _run(adapter: Any, options: FillMaskOptions, ctx: RunContext) -> SectionResult:
    templates, lexicons = load_configured(options.templates, options.lexicons, ctx, section="fill_mask")
    result = fill_mask_bias(adapter, templates=templates, lexicons=lexicons, group_slot=options.group_slot,
                            targets=options.targets or None, groups=options.groups,
                            target_groups=options.target_groups, neutral=options.neutral, top_k=options.top_k,
                            max_instances=options.max_items, seed=ctx.seed, n_bootstrap=options.n_bootstrap,
                            n_permutations=options.n_permutations)
    return result.to_section()


SECTION = Section(
    name="fill_mask", options=FillMaskOptions, model_kinds=("masked_lm", "causal_lm"), run=_run,
    description="Fill-mask association probe: increased log probability of target words given group words",
    citation=CITATION, metrics=("bias_score", "effect_size", "p_value", "by_group.*"), check=_check,
    meanings=(("bias_score", "Association bias score",
               "Largest gap between groups in the increased log-probability of the target words; 0 is none."),
              ("effect_size", "Effect size", "Standardised difference of the groups' associations; 0 is none."),
              ("p_value", "Permutation p-value", "Chance of a gap this large if the group words were shuffled."),
              ("by_group.*", "Mean association, {}",
               "Mean increased log-probability of the target words given this group's words.")),
    rules=(ASSOCIATION_RULE,),
)
