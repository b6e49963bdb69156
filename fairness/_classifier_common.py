"""What the three classifier sections (counterfactual, behaviour, groups) share.

Their citations, the starter templates and lexicons they expand when no data is given (and
:func:`starter_labelled_texts`, which ``raikit scan`` reads a classifier's positive class from), the check
that the model is a classifier, metric-name-safe group names and the group of a template instance.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.sections import RunContext, data_key
from raikit.fairness.templates import expand, load_configured

__all__ = ["CITATIONS", "starter_labelled_texts"]


CITATIONS = {
    "counterfactual": ("Garg, S., Perot, V., Limtiaco, N., Taly, A., Chi, E. H., Beutel, A. (2019). Counterfactual "
                       "Fairness in Text Classification through Robustness. AIES 2019."),
    "behaviour": ("Ribeiro, M. T., Wu, T., Guestrin, C., Singh, S. (2020). Beyond Accuracy: Behavioral Testing of "
                  "NLP Models with CheckList. ACL 2020."),
    "groups": ("Hardt, M., Price, E., Srebro, N. (2016). Equality of Opportunity in Supervised Learning. NeurIPS; "
               "Bird, S. et al. (2020). Fairlearn: A toolkit for assessing and improving fairness in AI."),
}
_DEFAULT_LEXICONS = ["builtin:lexicons/gender.toml", "builtin:lexicons/identity.toml"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+-]+", "_", str(name)).strip("_") or "none"


def _need_classifier(adapter: Any, what: str) -> None:
    if getattr(adapter, "kind", None) != "classifier":
        raise RaikitInputError(f"the {what} test needs a classifier model; {getattr(adapter, 'name', '')!r} is "
                               f"{getattr(adapter, 'kind', None)!r}")


def _starter_instances(templates: str, lexicons: Sequence[str], ctx: RunContext, *, section: str,
                       max_instances: int) -> pd.DataFrame:
    tpls, lex = load_configured(templates, lexicons, ctx, section=section)
    return expand(tpls, lex, max_instances=max_instances or None, seed=ctx.seed)


def starter_labelled_texts(*, per_template: int = 12, seed: int = 0) -> pd.DataFrame:
    """raikit's starter sentiment texts with their expected class: the MFT templates filled with the lexicons.

    Columns ``text`` and ``label`` ("positive" or "negative"); at most ``per_template`` instances per template
    (seeded). ``raikit scan`` reads which class of a classifier with generic labels (``LABEL_0``) is positive
    from the model's own predictions on them.
    """
    inst = _starter_instances("builtin:templates/classifier.toml", _DEFAULT_LEXICONS, RunContext(seed=seed),
                              section="scan", max_instances=per_template)
    inst = inst[(inst["test"] == "mft") & inst["label"].isin(["positive", "negative"])]
    return inst[["text", "label"]].reset_index(drop=True)


def _check_starter(options: Any, ctx: RunContext, section: str) -> None:
    with data_key("templates"):
        if _starter_instances(options.templates, options.lexicons, ctx, section=section,
                              max_instances=options.max_items).empty:
            raise RaikitInputError("the templates and lexicons give no instance", where=options.templates)


def _group_column(frame: pd.DataFrame) -> pd.Series:
    """The group of each instance: its first filled slot's group.

    Groups of different slots that a reader could take for one another (``male`` of ``{person}`` and
    ``gender_male`` of ``{identity}``, or the same name twice) are named with their slot: ``person_male``.
    """
    cols = [c for c in frame.columns if c.endswith("_group")]
    if not cols:
        return pd.Series([""] * len(frame), index=frame.index)
    names = {c: {str(v) for v in frame[c].dropna() if str(v)} for c in cols}
    for c in cols:
        others = set().union(*(names[o] for o in cols if o != c))
        clash = {v for v in names[c] if v in others or any(o.endswith("_" + v) for o in others)}
        if clash:
            slot = c[:-len("_group")]
            frame = frame.assign(**{c: frame[c].map(lambda v, clash=clash, slot=slot: f"{slot}_{v}" if v in clash
                                                    else v)})
    out = frame[cols[0]].copy()
    for c in cols[1:]:
        out = out.where(out.notna() & (out != ""), frame[c])
    return out.fillna("")
