"""How CrowS-Pairs and StereoSet scores move with three scoring choices (issue 11), on the built-in causal LM.

Not part of ``python -m bench`` (it measures scores, not speed):

    HF_HUB_OFFLINE=1 python -m bench.scoring_choices [--pairs N] [--seed S]

Scores the same CrowS-Pairs pairs (all 1,508, or a seeded subsample of N) with ``builtin:smollm2-135m``:

* item 1: conditioned on the chat marker ``<|im_start|>`` (the old BOS rule) versus ``<|endoftext|>``
  (the document start raikit now chooses), both in float32;
* item 2: bfloat16 versus float32 (same start token, same batch size): metric score, how many pair outcomes
  change, and the largest change of a sentence score (on the first ``--bf16-pairs`` of those pairs);
* item 5 (``--stereoset N``): StereoSet on a seeded subsample of N items of both splits: the old headline
  (both splits pooled per target) against the new one (intrasentence only) and the intersentence numbers
  now reported apart.

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
from raikit.fairness.stereoset import stereoset, stereoset_score


def _score(spec: ModelSpec, more: list[str], less: list[str], dirs: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    adapter = load_model(spec, device="cpu", progress=False)
    start = time.perf_counter()
    sm, sl = score_crows_pairs(adapter, more, less, dirs)
    return sm, sl, time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=0, help="seeded subsample size (0: all pairs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16-pairs", type=int, default=100, help="pairs for the bfloat16 drift (0: skip)")
    parser.add_argument("--stereoset", type=int, default=0, help="StereoSet items for item 5 (0: skip)")
    parser.add_argument("--skip-crows", action="store_true", help="only the StereoSet part")
    args = parser.parse_args(argv)
    frame = load_crows_pairs()
    frame = frame.iloc[subsample_indices(len(frame), args.pairs or None, seed=args.seed)].reset_index(drop=True)
    more, less = frame["sent_more"].tolist(), frame["sent_less"].tolist()
    dirs = frame["stereo_antistereo"].tolist()
    print(f"CrowS-Pairs pairs: {len(frame)} (seed {args.seed}); torch threads {torch.get_num_threads()}")
    print("| start token | dtype | metric score | stereo | antistereo | neutral | seconds |")
    print("|---|---|---|---|---|---|---|")
    runs = {}
    configs = [("<|im_start|> (old BOS rule)", "bos", "float32", len(dirs)),
               ("<|endoftext|> (auto)", "auto", "float32", len(dirs))]
    if args.bf16_pairs:
        configs.append(("<|endoftext|> (auto)", "auto", "bfloat16", min(args.bf16_pairs, len(dirs))))
    for label, start, dtype, n in [] if args.skip_crows else configs:
        spec = ModelSpec(id="builtin:smollm2-135m", batch_size=32, start_token=start, dtype=dtype)
        sm, sl, secs = _score(spec, more[:n], less[:n], dirs[:n])
        runs[(start, dtype)] = (sm, sl)
        res = crows_pairs_score(sm, sl, dirs[:n])
        print(f"| {label} | {dtype} | {res['metric_score']:.2f} ({n} pairs) | {res['stereotype_score']:.2f} | "
              f"{res['antistereotype_score']:.2f} | {res['neutral']} | {secs:.0f} |", flush=True)
    if ("auto", "bfloat16") in runs and not args.skip_crows:
        n = len(runs[("auto", "bfloat16")][0])
        f32 = tuple(x[:n] for x in runs[("auto", "float32")])
        b16 = runs[("auto", "bfloat16")]
        ref = crows_pairs_score(*f32, dirs[:n])["metric_score"]
        print(f"float32 on the same {n} pairs: metric score {ref:.2f}")
        changed = sum(a != b for a, b in zip(pair_outcomes(*f32), pair_outcomes(*b16)))
        drift = float(np.max(np.abs(np.concatenate([f32[0] - b16[0], f32[1] - b16[1]]))))
        mean_drift = float(np.mean(np.abs(np.concatenate([f32[0] - b16[0], f32[1] - b16[1]]))))
        print(f"bfloat16 vs float32: {changed} of {n} pair outcomes differ; sentence log-likelihood "
              f"|difference| mean {mean_drift:.3f}, max {drift:.3f} nats", flush=True)
    if args.stereoset:
        adapter = load_model(ModelSpec(id="builtin:smollm2-135m", batch_size=32), device="cpu", progress=False)
        start = time.perf_counter()
        result = stereoset(adapter, split="both", max_items=args.stereoset, seed=args.seed)
        secs = time.perf_counter() - start
        items = result.items
        pooled = stereoset_score(items["score_stereotype"], items["score_anti-stereotype"], items["score_unrelated"],
                                 items["target"].astype(str).tolist())
        print(f"StereoSet, {len(items)} items (seed {args.seed}; "
              f"{int((items['type'] == 'intrasentence').sum())} intrasentence), {secs:.0f} s")
        print("| headline | SS | LMS | ICAT |")
        print("|---|---|---|---|")
        print(f"| before: both splits pooled per target | {pooled['ss']:.2f} | {pooled['lms']:.2f} | "
              f"{pooled['icat']:.2f} |")
        print(f"| after: ss/lms/icat (intrasentence) | {result.ss.value:.2f} | {result.lms.value:.2f} | "
              f"{result.icat.value:.2f} |")
        inter = result.intersentence
        print(f"| after: intersentence.* (raikit's rule) | {inter['ss'].value:.2f} | {inter['lms'].value:.2f} | "
              f"{inter['icat'].value:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
