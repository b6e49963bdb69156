"""``raikit federated serve`` and ``raikit federated join``: the deployment runtime from the command line.

``serve`` starts a SuperLink (TLS with certificates raikit generates unless ``--insecure``), then runs the
audit config with its ``[federated]`` section pointed at that SuperLink, so the final global model is
saved and re-audited like any retrained model; the SuperLink is stopped when the run ends. With TLS and a
Flower that supports it, SuperNode authentication is on by default: the SuperLink starts with
``--enable-supernode-auth`` and ``serve`` registers the public key of every SuperNode allowed to join (the
``*.pub`` files of ``--supernode-keys``, plus each ``--authorize``; when there are none it generates one key
pair per client of the config), so a SuperNode with any other key, or none, is refused.
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


_WILDCARDS = ("0.0.0.0", "::", "")


def advertised(host: str, port: int, sans: list[str]) -> tuple[list[str], str]:
    """The names the SuperLink certificate holds, and the address to give ``raikit federated join``.

    Parameters
    ----------
    host : str
        ``--host``: the listening address (a wildcard such as ``0.0.0.0`` listens on every interface).
    port : int
        ``--port``.
    sans : list of str
        ``--san``: names or IPs the SuperNodes use.

    Returns
    -------
    (list of str, str)
        Loopback names, ``host`` (unless a wildcard), the ``--san`` names and, for a wildcard ``host``, this
        machine's own name (so that SuperNodes on other machines can verify the certificate); and the first
        name a SuperNode elsewhere can use, as ``name:port`` (loopback when ``host`` is loopback).
    """
    import socket

    own = [n for n in dict.fromkeys([socket.getfqdn(), socket.gethostname()]) if n and n != "localhost"] \
        if host in _WILDCARDS else []
    names = list(dict.fromkeys(["127.0.0.1", "localhost", *([] if host in _WILDCARDS else [host]), *sans, *own]))
    reach = ([*sans, *own] if host in _WILDCARDS else [host]) or ["127.0.0.1"]
    return names, f"{reach[0]}:{port}"


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


def _check_authorized(args: argparse.Namespace) -> list[Path]:
    """The ``--authorize`` public keys, each checked (one-line error naming a missing or malformed file)."""
    from raikit.federated._deploy import key_fingerprint

    extra = [Path(k) for k in args.authorize]
    for key in extra:
        if not key.is_file():
            raise RaikitInputError(f"public key file not found: {key}", where="--authorize")
        key_fingerprint(key)
    return extra


def _authorized_keys(args: argparse.Namespace, config: Path, folder: Path) -> list[Path]:
    """The public keys ``serve`` registers: ``folder/*.pub`` and ``--authorize``; when both are empty, a new key
    pair per client of the config's ``[federated]`` table, written to ``folder``."""
    from raikit.federated._deploy import make_supernode_keys

    extra = _check_authorized(args)
    keys = sorted(folder.glob("*.pub")) if folder.is_dir() else []
    if not keys and not extra:
        from raikit.audits.runner import load_audit

        planned = next((p for p in load_audit(config, seed=args.seed).plan if p.table.capability == "federated"),
                       None)
        if planned is None:
            raise RaikitInputError("the config has no [federated] table", where=str(config))
        make_supernode_keys(folder, [f"supernode-{i}" for i in range(int(planned.options.clients))])
        keys = sorted(folder.glob("*.pub"))
    return keys + extra


def serve(args: argparse.Namespace) -> int:
    """Start a SuperLink and run the config against it; nothing is written (no certificate, no key) on bad input."""
    from raikit.federated._deploy import check_reachable

    config = Path(args.config)
    if not config.is_file():
        raise RaikitInputError("config file not found", where=args.config)
    if not 0 < args.port < 65536:
        raise RaikitInputError(f"must be between 1 and 65535, got {args.port}", where="--port")
    address = f"{'127.0.0.1' if args.host in _WILDCARDS else args.host}:{args.port}"  # reached from here
    hosts, join_address = advertised(args.host, args.port, list(args.san))
    try:  # something already listening there is not ours to use
        check_reachable(address, timeout=1.0)
    except RaikitInputError:
        pass
    else:
        raise RaikitInputError(f"{address} is already in use", where="--port")
    _check_authorized(args)  # before anything is written
    _preflight(config, args, address)
    out = Path(args.out)
    workdir = Path(args.certs) if args.certs else out / "federation"
    made = [d for d in (out, workdir) if not d.exists()]  # removed again if the input turns out bad
    try:
        return _serve(args, config, address, join_address, hosts, out, workdir)
    except RaikitInputError:
        import shutil

        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _preflight(config: Path, args: argparse.Namespace, address: str) -> None:
    """Validate the whole config as serve will run it (its SuperLink not started yet) before anything is written."""
    from raikit.audits.runner import load_audit
    from raikit.federated._section import PREFLIGHT_ENV

    keys = {"RAIKIT_FEDERATED_SUPERLINK": address, "RAIKIT_FEDERATED_ROOT_CERTIFICATES": "",
            "RAIKIT_FEDERATED_INSECURE": "1", PREFLIGHT_ENV: "1"}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        audit = load_audit(config, seed=args.seed)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not any(p.table.capability == "federated" for p in audit.plan):
        raise RaikitInputError("the config has no [federated] table", where=str(config))


def _serve(args: argparse.Namespace, config: Path, address: str, join_address: str, hosts: list[str], out: Path,
           workdir: Path) -> int:
    import json

    from raikit.audits.runner import run_audit
    from raikit.federated._deploy import (
        AUTH_ENV, register_supernodes, start_superlink, stop_process, supports_supernode_auth,
    )

    certs = None
    if not args.insecure:
        certs = _certificates(workdir, hosts)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.insecure:
        auth: dict = {"enabled": False, "why": "no TLS (--insecure): Flower authenticates SuperNodes only over TLS"}
    elif args.no_supernode_auth:
        auth = {"enabled": False, "why": "turned off (--no-supernode-auth)"}
    elif not supports_supernode_auth():
        auth = {"enabled": False, "why": "the installed Flower cannot register SuperNode keys"}
    else:
        auth = {"enabled": True}
    keys_dir = Path(args.supernode_keys) if args.supernode_keys else workdir / "supernodes"
    public_keys = _authorized_keys(args, config, keys_dir) if auth["enabled"] else []
    link = start_superlink(host=args.host, port=args.port, certs=certs, insecure=args.insecure,
                           supernode_auth=bool(auth["enabled"]), workdir=workdir, log=workdir / "superlink.log")
    try:
        if auth["enabled"]:
            assert certs is not None
            auth["keys"] = register_supernodes(superlink=address, root_certificates=certs["ca"],
                                               public_keys=public_keys, workdir=workdir)
    except BaseException:
        stop_process(link)
        raise
    ca = str(certs["ca"].resolve()) if certs else ""
    if not args.quiet:
        how = f"--root-certificates {for_terminal(ca)}" if certs else "--insecure"
        if auth["enabled"]:
            how += f" --auth-key {for_terminal(keys_dir.resolve())}/supernode-N"
        print(f"superlink: {for_terminal(address)} ({'TLS' if certs else 'INSECURE, no TLS'}; SuperNode "
              f"authentication {'on, ' + str(len(auth['keys'])) + ' key(s) registered' if auth['enabled'] else 'OFF'}"
              f"); log {for_terminal(workdir / 'superlink.log')}", file=sys.stderr)
        print(f"join with: raikit federated join {for_terminal(config)} --partition N "
              f"--superlink {for_terminal(join_address)} {how}", file=sys.stderr)
    saved = {k: os.environ.get(k) for k in ("RAIKIT_FEDERATED_SUPERLINK", "RAIKIT_FEDERATED_ROOT_CERTIFICATES",
                                            "RAIKIT_FEDERATED_INSECURE", AUTH_ENV)}
    os.environ.update({"RAIKIT_FEDERATED_SUPERLINK": address, "RAIKIT_FEDERATED_ROOT_CERTIFICATES": ca,
                       "RAIKIT_FEDERATED_INSECURE": "1" if args.insecure else "0", AUTH_ENV: json.dumps(auth)})
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


def _refusal(log: Path) -> str:
    """Flower's reason when the SuperLink refused this SuperNode (unregistered key, or no key while the SuperLink
    authenticates SuperNodes: API errors 2001 and 2004); empty otherwise."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in lines if "[code: 2001]" in line or "[code: 2004]" in line), "")


#: seconds the SuperLink may stay unreachable before ``join`` takes it as ended and stops its SuperNode
SUPERLINK_GONE_AFTER = 6.0


def join(args: argparse.Namespace) -> int:
    """Start a SuperNode for one partition; end when the SuperLink ends (exit 0) or on any failure (exit 2).

    Every failure ends with raikit's one line last (Flower's own log lines go to ``--log``, never over it):
    a wrong or non-PEM CA, ``--insecure`` against a TLS SuperLink (both found before the SuperNode starts),
    a refused key, a SuperNode that stopped while the SuperLink was still up. No process is left: the
    SuperNode and every process it started are stopped, and they die with ``join`` if it is killed.
    """
    from raikit.audits.errors import RunFailedError
    from raikit.federated._deploy import (
        check_private_key, check_reachable, check_tls, reachable, start_supernode, stop_tree,
    )

    config = Path(args.config)
    if not config.is_file():
        raise RaikitInputError("config file not found", where=args.config)
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
    auth_key = Path(args.auth_key) if args.auth_key else None
    if auth_key is not None:
        if args.insecure:
            raise RaikitInputError("SuperNode authentication needs TLS; drop --insecure", where="--auth-key")
        check_private_key(auth_key)
    log = Path(args.log) if args.log else Path(f"supernode-{args.partition}.log")
    if log.is_dir():
        raise RaikitInputError("is a folder; give a file for the SuperNode's log", where=f"--log {log}")
    try:
        check_reachable(args.superlink)
    except RaikitInputError:
        raise RaikitInputError(f"SuperLink {args.superlink} is unreachable (is raikit federated serve running?)",
                               where="--superlink") from None
    check_tls(args.superlink, root_certificates=root, insecure=args.insecure)
    import tempfile

    from raikit.federated._deploy import adopt_orphans, prepare_node, stop_descendants

    gone = False
    adopt_orphans()  # a SuperNode that dies leaves its superexec and ClientApps to this process, which stops them
    joined_at = time.time()
    with tempfile.TemporaryDirectory(prefix="raikit-supernode-", ignore_cleanup_errors=True) as work:
        facts = prepare_node(config, args.partition, args.seed, Path(work) / "node")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        # same process group as this command: stopping `join` (or its group) stops the SuperNode and its apps
        node = start_supernode(superlink=args.superlink, node=Path(work) / "node", partition=args.partition,
                               root_certificates=root, insecure=args.insecure, auth_key=auth_key, workdir=Path(work),
                               log=log, max_wait=60.0, new_session=False)
        print(f"supernode: client {for_terminal(facts['client'])} (partition {args.partition}, {facts['train']} "
              f"training and {facts['test']} test examples) joining {for_terminal(args.superlink)}"
              f"{'' if root else ' (INSECURE, no TLS)'}{' with key ' + str(auth_key) if auth_key else ''}; "
              f"log {for_terminal(log)}", file=sys.stderr)
        unreachable_since: float | None = None
        try:
            while node.poll() is None:
                if reachable(args.superlink):
                    unreachable_since = None
                else:
                    unreachable_since = unreachable_since or time.monotonic()
                    if time.monotonic() - unreachable_since >= SUPERLINK_GONE_AFTER:
                        gone = True
                        break
                time.sleep(1.0)
        finally:
            code = node.poll()
            stop_tree(node)
            stop_descendants(since=joined_at)  # what a dead SuperNode left: nothing writes in `work` after this
    refused = _refusal(log)
    if refused:
        hint = (f"is {auth_key}.pub registered with the SuperLink (raikit federated serve --authorize)?" if auth_key
                else "the SuperLink authenticates SuperNodes: pass a registered private key with --auth-key")
        raise RunFailedError(f"the SuperLink {args.superlink} refused the SuperNode for partition {args.partition}: "
                             f"{refused}; {hint}")
    if not gone:
        raise RunFailedError(f"the SuperNode for partition {args.partition} stopped (exit code {code}) while the "
                             f"SuperLink {args.superlink} was still up; its log: {log}")
    print(f"supernode: the SuperLink {for_terminal(args.superlink)} ended; SuperNode for partition "
          f"{args.partition} stopped", file=sys.stderr)
    return 0
