"""``raikit federated serve`` and ``raikit federated join``: the deployment runtime from the command line.

Both commands compose the runner with the federated capability's SuperLink and SuperNode
(:mod:`raikit.federated`), which take plain arguments and never call the runner:

- ``serve`` checks its flags, validates the config as it will run it (its SuperLink not started yet), then,
  while a SuperLink runs (:func:`raikit.federated.superlink_session`), runs the audit with :func:`run_audit`:
  its ``[federated]`` section trains on the SuperNodes that joined, and the final global model is saved and
  re-audited like any retrained model. Nothing (no certificate, no key) is left behind on bad input.
- ``join`` checks its flags and the SuperLink, loads the config and its model as the runner does, writes its
  partition (:func:`raikit.federated.write_partition`) and serves it with a SuperNode
  (:func:`raikit.federated.run_supernode`) until the SuperLink goes away.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.escape import for_terminal

__all__ = ["serve", "join"]


def _config_file(path: str) -> Path:
    config = Path(path)
    if not config.is_file():
        raise RaikitInputError("config file not found", where=path)
    return config


def _federated_table(audit: Any, config: Path) -> Any:
    """The config's one planned ``[federated]`` section (a one-line error when it has none)."""
    planned = next((p for p in audit.plan if p.table.capability == "federated"), None)
    if planned is None:
        raise RaikitInputError("the config has no [federated] table", where=str(config))
    return planned


def serve(args: argparse.Namespace) -> int:
    """Start a SuperLink and run the config against it; nothing is written (no certificate, no key) on bad input."""
    import shutil

    from raikit.audits.runner import load_audit, run_audit
    from raikit.federated import check_serve, serve_preflight, superlink_session

    config = _config_file(args.config)
    link = check_serve(host=args.host, port=args.port, sans=list(args.san), insecure=args.insecure,
                       supernode_auth=not args.no_supernode_auth, authorize=list(args.authorize))
    with serve_preflight(link.address):  # the whole config as serve will run it, before anything is written
        planned = _federated_table(load_audit(config, seed=args.seed), config)
    out = Path(args.out)
    workdir = Path(args.certs) if args.certs else out / "federation"
    keys = Path(args.supernode_keys) if args.supernode_keys else workdir / "supernodes"
    made = [d for d in (out, workdir) if not d.exists()]  # removed again if the input turns out bad
    try:
        with superlink_session(link, workdir=workdir, supernode_keys=keys, clients=planned.options.clients,
                               config=config, quiet=args.quiet):
            outcome = run_audit(config, out_dir=out, seed=args.seed, offline=True if args.offline else None,
                                progress=not args.quiet)
    except RaikitInputError:
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    print(f"results: {for_terminal(outcome.out_dir / 'results.json')}")
    metrics = outcome.results["metrics"]
    if "federated.accuracy" in metrics:
        line = f"federated: accuracy {metrics['federated.accuracy']['value']:.3f}"
        if "federated.centralized_accuracy" in metrics:
            line += f", centralized {metrics['federated.centralized_accuracy']['value']:.3f}"
        lost = metrics.get("federated.clients_lost", {}).get("details", {}).get("lost", [])
        if lost:
            line += "; lost " + ", ".join(f"client {x['client']} (round {x['round']})" for x in lost)
        print(for_terminal(line))
    return outcome.exit_code


def join(args: argparse.Namespace) -> int:
    """Start a SuperNode for one partition; end when the SuperLink ends (exit 0) or on any failure (exit 2).

    Every failure ends with raikit's one line last (Flower's own log lines go to ``--log``, never over it):
    a wrong or non-PEM CA, ``--insecure`` against a TLS SuperLink (both found before the SuperNode starts),
    a refused key, a SuperNode that stopped while the SuperLink was still up. No process is left: the
    SuperNode and every process it started are stopped, and they die with ``join`` if it is killed.
    """
    from raikit.audits.models import load_model
    from raikit.audits.runner import _data_dir, _local_spec, load_audit
    from raikit.audits.sections import RunContext
    from raikit.federated import check_join, run_supernode, supernode_workspace, write_partition

    config = _config_file(args.config)
    node = check_join(superlink=args.superlink, partition=args.partition, root_certificates=args.root_certificates,
                      insecure=args.insecure, auth_key=args.auth_key, log=args.log)
    with supernode_workspace() as work:
        audit = load_audit(config, seed=args.seed)
        planned = _federated_table(audit, config)
        cfg = audit.config
        ctx = RunContext(seed=cfg.run.seed, base_dir=cfg.base_dir, data_dir=_data_dir(cfg), progress=False)
        adapter = load_model(_local_spec(cfg.models[planned.table.model], cfg.base_dir), device="cpu", offline=True,
                             progress=False)  # a model folder beside the config, wherever join runs
        facts = write_partition(adapter, planned.options, ctx, partition=args.partition, folder=work / "node")
        run_supernode(node, node=work / "node", workdir=work, facts=facts)
    return 0
