"""Run the benchmarks (``python -m bench [--quick] [--device cuda] [name ...]``) and print Markdown rows.

Full runs (not ``--quick``) also append their rows, with the machine, the date and the load average, to
``bench/RESULTS.md`` (``--no-record`` to skip). Torch uses every core by default (two on the machine the
CPU goals are set for); ``--threads 1`` makes baseline and raikit compete for one core on a busy machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import os
import platform
import sys
from pathlib import Path

import torch

MODULES = ("bench_adapters", "bench_scaling", "bench_explain", "bench_privacy", "bench_generation")
RESULTS = Path(__file__).with_name("RESULTS.md")
RUNS_HEADING = "## Runs recorded by `make bench`"


def machine() -> str:
    """One line naming the machine the figures came from."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()} ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {gpu}), "
            f"torch {torch.__version__}")


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def record(name: str, rows: list[str], *, device: str, started: str) -> None:
    """Append one module's rows under a dated heading in ``bench/RESULTS.md``."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if RUNS_HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{RUNS_HEADING}\n"
    block = (f"\n### {name}, {started} UTC, device {device}\n\n`{machine()}`; load average at the end "
             f"(1, 5, 15 min): {load_average()}\n\n" + "\n".join(rows) + "\n")
    RESULTS.write_text(text.rstrip("\n") + "\n" + block, encoding="utf-8")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"modules to run (default: {', '.join(MODULES)})")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: checks that the paths agree; no record")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (modules that take a device)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    parser.add_argument("--no-record", action="store_true", help="do not append the rows to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; load average {load_average()}", flush=True)
    for name in args.names or list(MODULES):
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        accepted = inspect.signature(module.run).parameters
        if args.quick and "quick" not in accepted:
            print(f"{name}: skipped (no --quick mode)")
            continue
        options = {k: v for k, v in (("device", args.device), ("quick", args.quick)) if k in accepted}
        started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        rows = module.run(**options)
        print("\n".join(rows), flush=True)
        if not args.quick and not args.no_record:
            record(name, rows, device=options.get("device", "cpu"), started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
