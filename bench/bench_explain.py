"""Benchmark: plain shap on a transformers pipeline vs raikit's batched SHAP path, same budget.

Both explain the same texts with shap's Partition explainer and Text masker at the same
``max_evals`` and ``batch_size`` on ``builtin:minilm-sentiment``; the script reports the wall time
of each (measured in this process, after a warm-up that pays numba's JIT once), the speed-up and the
Pearson correlation of the token-level SHAP values over all texts, tokens and classes.

Run: ``HF_HUB_OFFLINE=1 python -m bench bench_explain`` or ``python -m bench.bench_explain --texts 16``
(not part of the test suite).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from raikit.explain import DEFAULT_TEXTS

TEXTS = [
    # the explain section's own example sentences, then eight more of the same kind
    *DEFAULT_TEXTS,
    "My flight got cancelled again, worst airline ever.",
    "Just finished the book and honestly it was brilliant.",
    "The hotel room was dirty and the wifi did not work.",
    "Great game last night, what a comeback!",
    "Not sure how I feel about the new design.",
    "The delivery was late but the driver was very kind.",
    "This phone keeps crashing, I regret buying it.",
    "Lovely weather for a walk in the park today.",
]


def measure(n_texts: int = 16, max_evals: int = 300, batch_size: int = 5) -> dict:
    """Time plain shap and raikit's path on the same texts and budget; compare their values."""
    import transformers

    from raikit.audits import load_model
    from raikit.explain import shap_token_values
    from raikit.explain._shap import _import_shap

    shap = _import_shap()
    texts = [t if i < len(TEXTS) else f"{t} ({i})" for i, t in enumerate((TEXTS * (n_texts // len(TEXTS) + 1)))]
    texts = texts[:n_texts]
    adapter = load_model("builtin:minilm-sentiment", device="cpu", progress=False)
    pipe = transformers.pipeline("text-classification", model=adapter.model, tokenizer=adapter.tokenizer,
                                 top_k=None, device="cpu")

    plain = shap.Explainer(pipe)
    plain(["warm up the numba jit"], max_evals=20, batch_size=batch_size, silent=True)
    t0 = time.perf_counter()
    plain_values = plain(texts, max_evals=max_evals, batch_size=batch_size, silent=True)
    plain_s = time.perf_counter() - t0

    adapter.clear_cache()
    t0 = time.perf_counter()
    ours = shap_token_values(adapter, texts, max_evals=max_evals, batch_size=batch_size)
    ours_s = time.perf_counter() - t0

    a = np.concatenate([np.asarray(v).ravel() for v in plain_values.values])
    b = np.concatenate([t.values.ravel() for t in ours])
    return {"texts": len(texts), "max_evals": max_evals, "batch_size": batch_size,
            "plain_shap_pipeline_s": round(plain_s, 2), "raikit_batched_s": round(ours_s, 2),
            "speedup": round(plain_s / ours_s, 2), "pearson": round(float(np.corrcoef(a, b)[0, 1]), 6),
            "max_abs_diff": float(np.abs(a - b).max())}


def run(n_texts: int = 8, max_evals: int = 100) -> list[str]:
    """Markdown table rows for ``python -m bench``."""
    r = measure(n_texts, max_evals)
    return [
        "| benchmark | baseline s | raikit s | speed-up | Pearson | max abs diff |",
        "|---|---|---|---|---|---|",
        f"| SHAP Partition, {r['texts']} texts, max_evals={r['max_evals']}, minilm-sentiment (plain shap on a "
        f"pipeline vs raikit) | {r['plain_shap_pipeline_s']:.2f} | {r['raikit_batched_s']:.2f} | "
        f"{r['speedup']:.1f}x | {r['pearson']:.4f} | {r['max_abs_diff']:.1e} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="plain shap vs raikit's batched SHAP path")
    parser.add_argument("--texts", type=int, default=16)
    parser.add_argument("--max-evals", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.texts, args.max_evals, args.batch_size), indent=2))


if __name__ == "__main__":
    main()
