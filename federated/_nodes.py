"""The SuperLink of ``raikit federated serve`` and the SuperNode of ``raikit federated join``.

The commands themselves are composition (:mod:`raikit.audits.federated_cli`: they load the audit config and
run it); this module holds what they do with Flower's processes, given plain arguments:

- serve: :func:`check_serve` checks the flags before anything is written; :func:`serve_preflight` is the
  environment under which the config is validated as serve will run it (its SuperLink not started yet);
  :func:`superlink_session` starts a SuperLink (TLS with certificates raikit generates unless insecure) and,
  while it is open, points the ``[federated]`` section at it, so the final global model is saved and
  re-audited like any retrained model; the SuperLink is stopped when the session ends. With TLS and a Flower
  that supports it, SuperNode authentication is on by default: the SuperLink starts with
  ``--enable-supernode-auth`` and the session registers the public key of every SuperNode allowed to join
  (the ``*.pub`` files of ``--supernode-keys``, plus each ``--authorize``; when there are none it generates
  one key pair per client of the config), so a SuperNode with any other key, or none, is refused.
- join: :func:`check_join` checks the flags and the SuperLink; inside :func:`supernode_workspace`,
  :func:`write_partition` writes one partition of the config's data with the model, and
  :func:`run_supernode` starts a SuperNode for it and stays until the SuperLink goes away or it is stopped
  (Ctrl-C / SIGTERM stop its whole process group).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.escape import for_terminal

__all__ = ["SuperLinkPlan", "SuperNodePlan", "advertised", "check_serve", "serve_preflight", "superlink_session",
           "check_join", "supernode_workspace", "write_partition", "run_supernode", "SUPERLINK_GONE_AFTER"]


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


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block, restored after it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------- serve: the SuperLink
@dataclass(frozen=True)
class SuperLinkPlan:
    """The SuperLink ``raikit federated serve`` starts, its flags checked by :func:`check_serve`.

    Parameters
    ----------
    host, port : str, int
        Where it listens (``--host``, ``--port``).
    address : str
        ``host:port`` as reached from this machine (loopback for a wildcard ``host``).
    join_address : str
        The address ``raikit federated join`` is told to use.
    hosts : tuple of str
        The names its certificate holds (:func:`advertised`).
    insecure : bool
        No TLS (``--insecure``).
    supernode_auth : bool
        SuperNode authentication asked for (not ``--no-supernode-auth``); on only with TLS and a Flower that
        supports it.
    authorize : tuple of Path
        Public keys registered besides the ``*.pub`` files of the keys folder (``--authorize``), each checked.
    """

    host: str
    port: int
    address: str
    join_address: str
    hosts: tuple[str, ...]
    insecure: bool
    supernode_auth: bool
    authorize: tuple[Path, ...]


def check_serve(*, host: str, port: int, sans: list[str], insecure: bool, supernode_auth: bool,
                authorize: list[str]) -> SuperLinkPlan:
    """``serve``'s flags, checked before anything is written (no certificate, no key on bad input).

    Raises
    ------
    RaikitInputError
        A port out of range or already in use, a missing or malformed ``--authorize`` key (naming the flag).
    """
    from raikit.federated._deploy import check_reachable, key_fingerprint

    if not 0 < port < 65536:
        raise RaikitInputError(f"must be between 1 and 65535, got {port}", where="--port")
    address = f"{'127.0.0.1' if host in _WILDCARDS else host}:{port}"  # reached from here
    hosts, join_address = advertised(host, port, list(sans))
    try:  # something already listening there is not ours to use
        check_reachable(address, timeout=1.0)
    except RaikitInputError:
        pass
    else:
        raise RaikitInputError(f"{address} is already in use", where="--port")
    extra = tuple(Path(k) for k in authorize)
    for key in extra:
        if not key.is_file():
            raise RaikitInputError(f"public key file not found: {key}", where="--authorize")
        key_fingerprint(key)
    return SuperLinkPlan(host=host, port=port, address=address, join_address=join_address, hosts=tuple(hosts),
                         insecure=insecure, supernode_auth=supernode_auth, authorize=extra)


def serve_preflight(address: str) -> contextlib.AbstractContextManager[None]:
    """The environment in which ``load_audit`` validates a config as ``serve`` will run it: the ``[federated]``
    section pointed at ``address``, whose SuperLink is not started yet (so not checked for reachability)."""
    from raikit.federated._section import PREFLIGHT_ENV

    return _environ({"RAIKIT_FEDERATED_SUPERLINK": address, "RAIKIT_FEDERATED_ROOT_CERTIFICATES": "",
                     "RAIKIT_FEDERATED_INSECURE": "1", PREFLIGHT_ENV: "1"})


def _certificates(folder: Path, hosts: tuple[str, ...]) -> dict[str, Path]:
    from raikit.federated._deploy import make_certificates

    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    if all(p.is_file() for p in paths.values()):
        return paths
    present = [p.name for p in paths.values() if p.is_file()]
    if present:
        raise RaikitInputError(f"incomplete certificate folder (has {', '.join(present)}; needs ca.pem, server.pem "
                               "and server.key, or none of them to generate new ones)", where=f"--certs {folder}")
    return make_certificates(folder, list(hosts))


def _authorized_keys(plan: SuperLinkPlan, folder: Path, clients: int) -> list[Path]:
    """The public keys the SuperLink registers: ``folder/*.pub`` and ``--authorize``; when both are empty, a new
    key pair per client of the config's ``[federated]`` table, written to ``folder``."""
    from raikit.federated._deploy import make_supernode_keys

    keys = sorted(folder.glob("*.pub")) if folder.is_dir() else []
    if not keys and not plan.authorize:
        make_supernode_keys(folder, [f"supernode-{i}" for i in range(int(clients))])
        keys = sorted(folder.glob("*.pub"))
    return keys + list(plan.authorize)


@contextlib.contextmanager
def superlink_session(plan: SuperLinkPlan, *, workdir: Path, supernode_keys: Path, clients: int, config: Path,
                      quiet: bool = False) -> Iterator[None]:
    """A running SuperLink, with the ``[federated]`` section of a run in this block pointed at it.

    Parameters
    ----------
    plan : SuperLinkPlan
        From :func:`check_serve`.
    workdir : Path
        Its certificates (made unless ``ca.pem``, ``server.pem`` and ``server.key`` are there), database and log.
    supernode_keys : Path
        Folder of the SuperNodes' public keys (``*.pub``); with none there and no ``authorize``, one key pair
        per client is generated in it.
    clients : int
        The config's ``[federated]`` ``clients``: how many key pairs to generate.
    config : Path
        The audit config, named in the ``join`` command printed for the SuperNodes.
    quiet : bool
        Print neither the SuperLink's address nor the ``join`` command.
    """
    import json

    from raikit.federated._deploy import (
        AUTH_ENV, register_supernodes, start_superlink, stop_process, supports_supernode_auth,
    )

    certs = None
    if not plan.insecure:
        certs = _certificates(workdir, plan.hosts)
    workdir.mkdir(parents=True, exist_ok=True)
    if plan.insecure:
        auth: dict = {"enabled": False, "why": "no TLS (--insecure): Flower authenticates SuperNodes only over TLS"}
    elif not plan.supernode_auth:
        auth = {"enabled": False, "why": "turned off (--no-supernode-auth)"}
    elif not supports_supernode_auth():
        auth = {"enabled": False, "why": "the installed Flower cannot register SuperNode keys"}
    else:
        auth = {"enabled": True}
    public_keys = _authorized_keys(plan, supernode_keys, clients) if auth["enabled"] else []
    link = start_superlink(host=plan.host, port=plan.port, certs=certs, insecure=plan.insecure,
                           supernode_auth=bool(auth["enabled"]), workdir=workdir, log=workdir / "superlink.log")
    try:
        if auth["enabled"]:
            assert certs is not None
            auth["keys"] = register_supernodes(superlink=plan.address, root_certificates=certs["ca"],
                                               public_keys=public_keys, workdir=workdir)
        ca = str(certs["ca"].resolve()) if certs else ""
        if not quiet:
            how = f"--root-certificates {for_terminal(ca)}" if certs else "--insecure"
            if auth["enabled"]:
                how += f" --auth-key {for_terminal(supernode_keys.resolve())}/supernode-N"
            state = f"on, {len(auth['keys'])} key(s) registered" if auth["enabled"] else "OFF"
            print(f"superlink: {for_terminal(plan.address)} ({'TLS' if certs else 'INSECURE, no TLS'}; SuperNode "
                  f"authentication {state}); log {for_terminal(workdir / 'superlink.log')}", file=sys.stderr)
            print(f"join with: raikit federated join {for_terminal(config)} --partition N "
                  f"--superlink {for_terminal(plan.join_address)} {how}", file=sys.stderr)
        with _environ({"RAIKIT_FEDERATED_SUPERLINK": plan.address, "RAIKIT_FEDERATED_ROOT_CERTIFICATES": ca,
                       "RAIKIT_FEDERATED_INSECURE": "1" if plan.insecure else "0", AUTH_ENV: json.dumps(auth)}):
            yield
    finally:
        stop_process(link)


# ---------------------------------------------------------------- join: a SuperNode
@dataclass(frozen=True)
class SuperNodePlan:
    """The SuperNode ``raikit federated join`` starts, its flags checked by :func:`check_join`.

    Parameters
    ----------
    superlink : str
        The SuperLink's ``host:port``.
    partition : int
        The partition of the config's ``[federated]`` data this SuperNode serves.
    root_certificates : Path or None
        The SuperLink's CA certificate (None: ``insecure``).
    insecure : bool
        No TLS.
    auth_key : Path or None
        The SuperNode's private key, when the SuperLink authenticates SuperNodes.
    log : Path
        Where Flower's own log lines go.
    """

    superlink: str
    partition: int
    root_certificates: Path | None
    insecure: bool
    auth_key: Path | None
    log: Path


def check_join(*, superlink: str, partition: int, root_certificates: str | None, insecure: bool,
               auth_key: str | None, log: str | None) -> SuperNodePlan:
    """``join``'s flags and the SuperLink, checked before anything is loaded or started.

    A wrong or non-PEM CA and ``insecure`` against a TLS SuperLink are found here, before the SuperNode starts.

    Raises
    ------
    RaikitInputError
        Naming the flag.
    """
    from raikit.federated._deploy import check_private_key, check_reachable, check_tls

    if partition < 0:
        raise RaikitInputError(f"must be >= 0, got {partition}", where="--partition")
    host, _, port = superlink.rpartition(":")
    if not host or not port.isdigit():
        raise RaikitInputError(f"must be host:port, got {superlink!r}", where="--superlink")
    root = None
    if not insecure:
        if not root_certificates:
            raise RaikitInputError("the SuperLink's CA certificate is needed (ca.pem from raikit federated serve), "
                                   "or --insecure", where="--root-certificates")
        root = Path(root_certificates)
        if not root.is_file():
            raise RaikitInputError(f"certificate file not found: {root}", where="--root-certificates")
    key = Path(auth_key) if auth_key else None
    if key is not None:
        if insecure:
            raise RaikitInputError("SuperNode authentication needs TLS; drop --insecure", where="--auth-key")
        check_private_key(key)
    log_file = Path(log) if log else Path(f"supernode-{partition}.log")
    if log_file.is_dir():
        raise RaikitInputError("is a folder; give a file for the SuperNode's log", where=f"--log {log_file}")
    try:
        check_reachable(superlink)
    except RaikitInputError:
        raise RaikitInputError(f"SuperLink {superlink} is unreachable (is raikit federated serve running?)",
                               where="--superlink") from None
    check_tls(superlink, root_certificates=root, insecure=insecure)
    return SuperNodePlan(superlink=superlink, partition=partition, root_certificates=root, insecure=insecure,
                         auth_key=key, log=log_file)


@contextlib.contextmanager
def supernode_workspace() -> Iterator[Path]:
    """A temporary folder for one SuperNode's partition and Flower home, removed after the block.

    This process adopts the orphans of the processes it starts (a SuperNode that dies leaves its superexec and
    ClientApps to it), and every process started since the block began is stopped before the folder goes, so
    nothing writes in it afterwards and no process is left.
    """
    import tempfile

    from raikit.federated._deploy import adopt_orphans, stop_descendants

    adopt_orphans()
    joined_at = time.time()
    with tempfile.TemporaryDirectory(prefix="raikit-supernode-", ignore_cleanup_errors=True) as work:
        try:
            yield Path(work)
        finally:
            stop_descendants(since=joined_at)  # what a dead SuperNode left


def write_partition(adapter: Any, options: Any, ctx: Any, *, partition: int, folder: Path) -> dict[str, Any]:
    """What ``join`` does once, before its SuperNode starts: build partition ``partition`` of the ``[federated]``
    data (seeded, as in the simulation) and write it with ``adapter``'s model to ``folder``
    (:func:`raikit.federated._task.save_task` with this partition only), so that each ClientApp process (Flower
    starts one per message) only reads a model folder and two small JSON files.

    Parameters
    ----------
    adapter : ClassifierAdapter
        The config's model for the ``[federated]`` table, loaded on the CPU.
    options : FederatedOptions
        The validated ``[federated]`` table.
    ctx : RunContext
        The run's seed and the folders its paths resolve against.

    Returns
    -------
    dict
        ``client``, ``train`` and ``test`` (example counts) and ``seed``.

    Raises
    ------
    RaikitInputError
        Bad data (the same one-line errors as ``raikit audit``), or a partition out of range.
    """
    from raikit.federated._section import _align_labels, _read, build_clients, make_task
    from raikit.federated._task import save_task

    data = _align_labels(_read(options, ctx), adapter, options)
    clients = build_clients(data, options, ctx.seed)
    if not 0 <= partition < len(clients):
        raise RaikitInputError(f"must be between 0 and {len(clients) - 1} ({len(clients)} clients), got {partition}",
                               where="--partition")
    task = make_task(adapter.model, adapter.tokenizer, data.label_names, clients, options, ctx.seed,
                     max_length=adapter.max_length, batch_size=adapter.batch_size)
    mine = clients[partition]
    save_task(task, folder, clients=[mine])
    return {"client": mine.client, "train": len(mine.train), "test": len(mine.test), "seed": ctx.seed}


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


def run_supernode(plan: SuperNodePlan, *, node: Path, workdir: Path, facts: Mapping[str, Any]) -> None:
    """Start a SuperNode serving the partition :func:`write_partition` wrote to ``node``; return when the
    SuperLink ends.

    Every failure ends with raikit's one line last (Flower's own log lines go to ``plan.log``, never over it).
    The SuperNode and every process it started are stopped, and they die with this process if it is killed.

    Raises
    ------
    RunFailedError
        The SuperLink refused this SuperNode's key (or its lack of one), or the SuperNode stopped while the
        SuperLink was still up.
    """
    from raikit.audits.errors import RunFailedError
    from raikit.federated._deploy import reachable, start_supernode, stop_tree

    gone = False
    plan.log.parent.mkdir(parents=True, exist_ok=True)
    plan.log.write_bytes(b"")
    # same process group as this command: stopping `join` (or its group) stops the SuperNode and its apps
    proc = start_supernode(superlink=plan.superlink, node=node, partition=plan.partition,
                           root_certificates=plan.root_certificates, insecure=plan.insecure, auth_key=plan.auth_key,
                           workdir=workdir, log=plan.log, max_wait=60.0, new_session=False)
    print(f"supernode: client {for_terminal(facts['client'])} (partition {plan.partition}, {facts['train']} "
          f"training and {facts['test']} test examples) joining {for_terminal(plan.superlink)}"
          f"{'' if plan.root_certificates else ' (INSECURE, no TLS)'}"
          f"{' with key ' + str(plan.auth_key) if plan.auth_key else ''}; log {for_terminal(plan.log)}",
          file=sys.stderr)
    unreachable_since: float | None = None
    try:
        while proc.poll() is None:
            if reachable(plan.superlink):
                unreachable_since = None
            else:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since >= SUPERLINK_GONE_AFTER:
                    gone = True
                    break
            time.sleep(1.0)
    finally:
        code = proc.poll()
        stop_tree(proc)
    refused = _refusal(plan.log)
    if refused:
        hint = (f"is {plan.auth_key}.pub registered with the SuperLink (raikit federated serve --authorize)?"
                if plan.auth_key else
                "the SuperLink authenticates SuperNodes: pass a registered private key with --auth-key")
        raise RunFailedError(f"the SuperLink {plan.superlink} refused the SuperNode for partition {plan.partition}: "
                             f"{refused}; {hint}")
    if not gone:
        raise RunFailedError(f"the SuperNode for partition {plan.partition} stopped (exit code {code}) while the "
                             f"SuperLink {plan.superlink} was still up; its log: {plan.log}")
    print(f"supernode: the SuperLink {for_terminal(plan.superlink)} ended; SuperNode for partition "
          f"{plan.partition} stopped", file=sys.stderr)
