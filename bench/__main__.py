"""Run every benchmark module (``python -m bench [name ...]``) and print its figures as Markdown rows."""
from __future__ import annotations

import importlib
import platform
import sys

import torch

MODULES = ("bench_adapters", "bench_explain", "bench_privacy")


def machine() -> str:
    """One line naming the machine the figures came from."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()} ({cpu}, {torch.get_num_threads()} torch threads, {gpu}), torch {torch.__version__}"


def main(argv: list[str]) -> int:
    names = argv or list(MODULES)
    print(f"machine: {machine()}")
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        for row in module.run():
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
