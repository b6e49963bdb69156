"""``raikit federated serve`` and ``raikit federated join``: the deployment runtime from the command line.

``serve`` starts a SuperLink (TLS with certificates raikit generates unless ``--insecure``), then runs the
audit config with its ``[federated]`` section pointed at that SuperLink, so the final global model is
saved and re-audited like any retrained model; the SuperLink is stopped when the run ends.
``join`` starts a SuperNode for one partition of the config's data and stays until the SuperLink goes away
or it is stopped (Ctrl-C / SIGTERM stop its whole process group).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from raikit.audits.errors import RaikitInputError
from raikit.audits.escape import for_terminal

__all__ = ["serve", "join"]


def _certificates(folder: Path, hosts: list[str]) -> dict[str, Path]:
    from raikit.federated._deploy import make_certificates

    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    if all(p.is_file() for p in paths.values()):
        return paths
    present = [p.name for p in paths.values() if p.is_file()]
    if present:
        raise RaikitInputError(f"incomplete certificate folder (has {', '.join(present)}; needs ca.pem, server.pem "
                               "and server.key, or none of them to generate new ones)", where=f"--certs {folder}")
    return make_certificates(folder, hosts)


def serve(args: argparse.Namespace) -> int:
    from raikit.audits.runner import run_audit
    from raikit.federated._deploy import check_reachable, start_superlink, stop_process

    config = Path(args.config)
    if not config.is_file():
        raise RaikitInputError("config file not found", where=args.config)
    if not 0 < args.port < 65536:
        raise RaikitInputError(f"must be between 1 and 65535, got {args.port}", where="--port")
    address = f"{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    try:  # something already listening there is not ours to use
        check_reachable(address, timeout=1.0)
    except RaikitInputError:
        pass
    else:
        raise RaikitInputError(f"{address} is already in use", where="--port")
    out = Path(args.out)
    workdir = Path(args.certs) if args.certs else out / "federation"
    certs = None
    if not args.insecure:
        hosts = list(dict.fromkeys(["127.0.0.1", "localhost", *([args.host] if args.host not in ("0.0.0.0", "::")
                                                                 else []), *args.san]))
        certs = _certificates(workdir, hosts)
    workdir.mkdir(parents=True, exist_ok=True)
    link = start_superlink(host=args.host, port=args.port, certs=certs, insecure=args.insecure, workdir=workdir,
                           log=workdir / "superlink.log")
    ca = str(certs["ca"].resolve()) if certs else ""
    if not args.quiet:
        how = f"--root-certificates {for_terminal(ca)}" if certs else "--insecure"
        print(f"superlink: {for_terminal(address)} ({'TLS' if certs else 'INSECURE, no TLS'}); log "
              f"{for_terminal(workdir / 'superlink.log')}", file=sys.stderr)
        print(f"join with: raikit federated join --config {for_terminal(config)} --partition N "
              f"--superlink {for_terminal(address)} {how}", file=sys.stderr)
    saved = {k: os.environ.get(k) for k in ("RAIKIT_FEDERATED_SUPERLINK", "RAIKIT_FEDERATED_ROOT_CERTIFICATES",
                                            "RAIKIT_FEDERATED_INSECURE")}
    os.environ.update({"RAIKIT_FEDERATED_SUPERLINK": address, "RAIKIT_FEDERATED_ROOT_CERTIFICATES": ca,
                       "RAIKIT_FEDERATED_INSECURE": "1" if args.insecure else "0"})
    try:
        outcome = run_audit(config, out_dir=out, seed=args.seed, offline=True if args.offline else None,
                            progress=not args.quiet)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_process(link)
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
    from raikit.federated._deploy import check_reachable, start_supernode

    config = Path(args.config)
    if not config.is_file():
        raise RaikitInputError("config file not found", where=f"--config {args.config}")
    if args.partition < 0:
        raise RaikitInputError(f"must be >= 0, got {args.partition}", where="--partition")
    host, _, port = args.superlink.rpartition(":")
    if not host or not port.isdigit():
        raise RaikitInputError(f"must be host:port, got {args.superlink!r}", where="--superlink")
    root = None
    if not args.insecure:
        if not args.root_certificates:
            raise RaikitInputError("the SuperLink's CA certificate is needed (ca.pem from raikit federated serve), "
                                   "or --insecure", where="--root-certificates")
        root = Path(args.root_certificates)
        if not root.is_file():
            raise RaikitInputError(f"certificate file not found: {root}", where="--root-certificates")
    try:
        check_reachable(args.superlink)
    except RaikitInputError:
        raise RaikitInputError(f"SuperLink {args.superlink} is unreachable (is raikit federated serve running?)",
                               where="--superlink") from None
    import tempfile

    from raikit.federated._deploy import prepare_node

    with tempfile.TemporaryDirectory(prefix="raikit-supernode-") as work:
        facts = prepare_node(config, args.partition, args.seed, Path(work) / "node")
        # same process group as this command: stopping `join` (or its group) stops the SuperNode and its apps
        node = start_supernode(superlink=args.superlink, node=Path(work) / "node", partition=args.partition,
                               root_certificates=root, insecure=args.insecure, workdir=Path(work),
                               log=None, max_wait=60.0, new_session=False)
        print(f"supernode: client {for_terminal(facts['client'])} (partition {args.partition}, {facts['train']} "
              f"training and {facts['test']} test examples) joined {for_terminal(args.superlink)}"
              f"{'' if root else ' (INSECURE, no TLS)'}", file=sys.stderr)
        try:
            while node.poll() is None:
                time.sleep(0.5)
        finally:
            if node.poll() is None:
                node.terminate()
                try:
                    node.wait(timeout=10)
                except Exception:  # noqa: BLE001
                    node.kill()
    return 0
