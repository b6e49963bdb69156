"""Before/after effects of issue 11 on CrowS-Pairs with the built-in causal LM (not part of ``python -m bench``).

    HF_HUB_OFFLINE=1 python -m bench.issue11_effects [--pairs N] [--seed S]

Scores the same CrowS-Pairs pairs (all 1,508, or a seeded subsample of N) with ``builtin:smollm2-135m``:

* item 1: conditioned on the chat marker ``<|im_start|>`` (the old BOS rule) versus ``<|endoftext|>``
  (the document start raikit now chooses), both in float32;
* item 2: bfloat16 versus float32 (same start token, same batch size): metric score, how many pair outcomes
  change, and the largest change of a sentence score.

Prints Markdown rows. Model scores only: the counting is raikit's ``crows_pairs_score``.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from raikit.audits.models import ModelSpec, load_model
from raikit.fairness.crows_pairs import (
    crows_pairs_score, load_crows_pairs, pair_outcomes, score_crows_pairs, subsample_indices,
)


def _score(spec: ModelSpec, more: list[str], less: list[str], dirs: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    adapter = load_model(spec, device="cpu", progress=False)
    start = time.perf_counter()
    sm, sl = score_crows_pairs(adapter, more, less, dirs)
    return sm, sl, time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=0, help="seeded subsample size (0: all pairs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args(argv)
    frame = load_crows_pairs()
    frame = frame.iloc[subsample_indices(len(frame), args.pairs or None, seed=args.seed)].reset_index(drop=True)
    more, less = frame["sent_more"].tolist(), frame["sent_less"].tolist()
    dirs = frame["stereo_antistereo"].tolist()
    print(f"CrowS-Pairs pairs: {len(frame)} (seed {args.seed}); torch threads {torch.get_num_threads()}")
    print("| start token | dtype | metric score | stereo | antistereo | neutral | seconds |")
    print("|---|---|---|---|---|---|---|")
    runs = {}
    configs = [("<|im_start|> (old BOS rule)", "bos", "float32"), ("<|endoftext|> (auto)", "auto", "float32")]
    if not args.no_bf16:
        configs.append(("<|endoftext|> (auto)", "auto", "bfloat16"))
    for label, start, dtype in configs:
        spec = ModelSpec(id="builtin:smollm2-135m", batch_size=32, start_token=start, dtype=dtype)
        sm, sl, secs = _score(spec, more, less, dirs)
        runs[(start, dtype)] = (sm, sl)
        res = crows_pairs_score(sm, sl, dirs)
        print(f"| {label} | {dtype} | {res['metric_score']:.2f} | {res['stereotype_score']:.2f} | "
              f"{res['antistereotype_score']:.2f} | {res['neutral']} | {secs:.0f} |", flush=True)
    if ("auto", "bfloat16") in runs:
        f32, b16 = runs[("auto", "float32")], runs[("auto", "bfloat16")]
        changed = sum(a != b for a, b in zip(pair_outcomes(*f32), pair_outcomes(*b16)))
        drift = float(np.max(np.abs(np.concatenate([f32[0] - b16[0], f32[1] - b16[1]]))))
        mean_drift = float(np.mean(np.abs(np.concatenate([f32[0] - b16[0], f32[1] - b16[1]]))))
        print(f"bfloat16 vs float32: {changed} of {len(dirs)} pair outcomes differ; sentence log-likelihood "
              f"|difference| mean {mean_drift:.3f}, max {drift:.3f} nats")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
