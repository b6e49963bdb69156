"""The deployment runtime for real: `raikit federated serve` (a SuperLink over TLS with raikit's
certificates and SuperNode authentication) and three `raikit federated join` SuperNodes, each with the
private key serve generated and registered, as separate processes on loopback; a SuperNode with a key the
SuperLink does not know is refused, one SuperNode is killed during round 1 and training still completes, the
lost client is named, and no process is left."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import synth
from raikit.federated._deploy import free_port, key_fingerprint, make_supernode_keys

RAIKIT = [sys.executable, "-c", "import sys; from raikit.audits.cli import main; sys.exit(main())"]
#: seconds any one wait may take: generous, so that a loaded machine makes these tests slower, never red (each
#: wait returns as soon as its readiness condition holds: a port that answers, a log line, a process that ended)
PATIENCE = 900.0


def _config(root: Path, extra: str = "") -> Path:
    path = root / "audit.toml"
    path.write_text('[run]\nseed = 0\ndevice = "cpu"\n[models.clf]\nid = "clf"\n'
                    '[federated]\nmodel = "clf"\ndata = "data.csv"\nclients = 3\nmin_clients = 2\nrounds = 2\n'
                    'local_epochs = 2\nbatch_size = 16\nlearning_rate = 3e-3\nmax_length = 16\n'
                    f'round_timeout = 1800.0\njoin_timeout = 1800.0\n{extra}'
                    '[report]\nformats = ["html"]\n', encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    return env


SEEN: dict[int, psutil.Process] = {}


def _track(procs) -> None:
    """Remember every descendant of ``procs`` (the SuperLink, SuperNodes and the apps they spawn)."""
    for p in procs:
        try:
            root = psutil.Process(p.pid)
            for child in [root, *root.children(recursive=True)]:
                SEEN.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            continue


def _alive() -> list[psutil.Process]:
    out = []
    for proc in SEEN.values():
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                p.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue


def _wait_for(predicate, timeout: float, what: str, procs=(), track=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _track(track)
        if predicate():
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args[-3:]} exited with {p.returncode} while waiting for {what}")
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_superlink_and_three_supernodes_over_tls_survive_a_killed_client(tmp_path):
    synth.make_task(tmp_path)
    config = _config(tmp_path)
    port = free_port()
    certs = tmp_path / "certs"
    log = tmp_path / "serve.log"
    procs: list[subprocess.Popen] = []
    try:
        with log.open("wb") as out:
            serve = subprocess.Popen([*RAIKIT, "federated", "serve", str(config), "--port", str(port), "--certs",
                                      str(certs), "--out", str(tmp_path / "out"), "--quiet"],
                                     stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path,
                                     start_new_session=True)
        procs.append(serve)
        _wait_for(lambda: (certs / "superlink.log").exists() and b"join with" in log.read_bytes()
                  or (certs / "ca.pem").exists() and _listening(port), PATIENCE, "the SuperLink", [serve])
        assert (certs / "ca.pem").is_file() and (certs / "server.key").stat().st_mode & 0o077 == 0
        keys = certs / "supernodes"
        assert sorted(p.name for p in keys.glob("*.pub")) == [f"supernode-{i}.pub" for i in range(3)]
        assert (keys / "supernode-0").stat().st_mode & 0o077 == 0
        # a SuperNode whose key was never registered is refused by the SuperLink: join ends with one line, exit 2
        [stranger] = make_supernode_keys(tmp_path / "stranger", ["intruder"])
        _wait_for(lambda: (certs / "superlink.log").read_bytes().count(b"/v1/control/register-node HTTP/1.1\" 200")
                  >= 3, PATIENCE, "the three key registrations", [serve])
        refused = subprocess.Popen(
            [*RAIKIT, "federated", "join", "--config", str(config), "--partition", "0", "--superlink",
             f"127.0.0.1:{port}", "--root-certificates", str(certs / "ca.pem"), "--auth-key", str(stranger),
             "--log", str(tmp_path / "stranger.log")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path,
            start_new_session=True)
        procs.append(refused)
        _, err = refused.communicate(timeout=PATIENCE)
        last = err.strip().splitlines()[-1]
        assert refused.returncode == 2, err[-2000:]
        assert "refused the SuperNode for partition 0" in last and "Failed to activate SuperNode" in last, last
        joins = []
        for partition in range(3):
            with (tmp_path / f"join{partition}.log").open("wb") as out:
                joins.append(subprocess.Popen(
                    [*RAIKIT, "federated", "join", "--config", str(config), "--partition", str(partition),
                     "--superlink", f"127.0.0.1:{port}", "--root-certificates", str(certs / "ca.pem"),
                     "--auth-key", str(keys / f"supernode-{partition}"),
                     "--log", str(tmp_path / f"supernode{partition}.log")],
                    stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path, start_new_session=True))
        procs += joins
        # Kill SuperNode 2 (its whole process group: join, flower-supernode, its ClientApp) once round 1 began:
        # the three replies to the server's opening query are in, so the round-1 training messages are out.
        # Replies are counted per node id: a SuperNode may push more than once (a retry), and three log lines
        # from two nodes would kill SuperNode 2 before it answered, so it would be lost as "node-<id>".
        _wait_for(lambda: len(_replied(certs / "superlink.log")) >= 3, PATIENCE, "round 1", [serve], procs)
        os.killpg(joins[2].pid, signal.SIGKILL)
        joins[2].wait(timeout=10)
        _wait_for(lambda: serve.poll() is not None, 3 * PATIENCE, "the run to finish", (), procs)
        text = log.read_text(errors="replace")
        assert serve.returncode == 0, text[-3000:]
        [run] = [p for p in (tmp_path / "out").iterdir() if p.is_dir() and p.name != "federation"]
        res = json.loads((run / "results.json").read_text())
        m = res["metrics"]
        assert m["federated.rounds"]["value"] == 2
        lost = m["federated.clients_lost"]["details"]["lost"]
        assert any(x["client"] == "2" and x["round"] == 1 for x in lost), lost
        assert "lost client 2 (round 1)" in text or "client 2 (round 1)" in text
        details = res["sections"]["federated"]["details"]
        assert details["transport"]["tls"] is True and details["transport"]["insecure"] is False
        auth = details["transport"]["supernode_auth"]
        assert auth["enabled"] is True, auth
        assert sorted(k["fingerprint"] for k in auth["keys"]) == sorted(
            key_fingerprint(keys / f"supernode-{i}.pub") for i in range(3))
        assert key_fingerprint(stranger.with_name("intruder.pub")) not in {k["fingerprint"] for k in auth["keys"]}
        assert any("SuperNode authentication was on: a SuperNode could join with one of the 3 key(s)" in n
                   and "without account authentication" in n and "declared its own partition" in n
                   for n in res["sections"]["federated"]["notes"]), res["sections"]["federated"]["notes"]
        assert "Control API" in details["transport"]["who_could_join"]
        assert all(r["clients_ok"] >= 2 for r in details["round_log"])
        assert "federated.per_client.2.accuracy" not in m and details["lost_before_any_update"] == ["2"]
        assert {"federated.per_client.0.accuracy", "federated.per_client.1.accuracy"} <= set(m)
        assert (run / "models" / "federated.global" / "model.safetensors").is_file()
        assert 0 <= m["federated.accuracy"]["value"] <= 1
        # the SuperLink is gone: each SuperNode still running ends by itself, exit 0, raikit's line last
        for partition, join in enumerate(joins[:2]):
            join.wait(timeout=PATIENCE)
            last = (tmp_path / f"join{partition}.log").read_text(errors="replace").strip().splitlines()[-1]
            assert join.returncode == 0 and "ended; SuperNode for partition" in last, (join.returncode, last)
    finally:
        _stop(procs)
        leftover = _gone_or_left(PATIENCE)
    assert not leftover, [p.cmdline()[:4] for p in leftover]


def _replied(log: Path) -> set[str]:
    """The node ids that pushed a reply to the SuperLink so far (Flower's ``Push replies from node_id=...`` lines)."""
    import re

    return set(re.findall(rb"Push replies from node_id=(\d+)", log.read_bytes()))


def _gone_or_left(timeout: float) -> list[psutil.Process]:
    """Wait (up to ``timeout``) for every process the test saw to end; kill and return those still running."""
    alive = _alive()
    _, alive = psutil.wait_procs(alive, timeout=timeout) if alive else ([], [])
    left = {p.pid for p in alive}
    alive = [p for p in _alive() if p.pid in left]
    for p in alive:
        p.kill()
    return alive


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _join(config: Path, port: int, ca: Path, log: Path, *extra: str, tmp: Path | None = None) -> subprocess.Popen:
    env = _env()
    if tmp is not None:  # the join's temporary files go here, so a test can see what it leaves
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
    return subprocess.Popen([*RAIKIT, "federated", "join", str(config), "--partition", "0", "--superlink",
                             f"127.0.0.1:{port}", "--root-certificates", str(ca), "--log", str(log), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def test_deployment_join_fails_loud_ends_with_the_superlink_and_leaves_no_process(tmp_path, capsys):
    """Issue 22.4: a wrong CA, a non-PEM CA and --insecure against TLS are one line and exit 2 at once; a SuperNode
    that dies makes join exit 2 with raikit's line last; when the SuperLink ends, join ends (exit 0); no process
    that join started is left (each join's process tree is counted)."""
    from raikit.audits.cli import main
    from raikit.federated._deploy import make_certificates, start_superlink, stop_process

    synth.make_task(tmp_path)
    config = _config(tmp_path)
    certs = make_certificates(tmp_path / "certs")
    wrong = make_certificates(tmp_path / "other")["ca"]
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82\x01\x0a not a PEM file")
    port = free_port()
    link_log = tmp_path / "superlink.log"
    link = start_superlink(port=port, certs=certs, workdir=tmp_path, log=link_log, timeout=PATIENCE)
    procs: list[subprocess.Popen] = []
    try:
        address = f"127.0.0.1:{port}"
        capsys.readouterr()  # what building the task printed
        for flags, expected in ((["--root-certificates", str(wrong)], "--root-certificates: the SuperLink"),
                                (["--root-certificates", str(not_pem)], "--root-certificates: not a PEM certificate"),
                                (["--insecure"], "--insecure: the SuperLink 127.0.0.1")):
            with pytest.raises(SystemExit) as exit_info:
                main(["federated", "join", str(config), "--partition", "0", "--superlink", address, *flags,
                      "--log", str(tmp_path / "never.log")])
            err = capsys.readouterr().err.strip().splitlines()
            assert exit_info.value.code == 2 and len(err) == 1 and expected in err[0], (flags, err)
        assert not (tmp_path / "never.log").exists()

        # a SuperNode that dies under join: exit 2, raikit's line last, Flower's lines in the log file only
        doomed = _join(config, port, certs["ca"], tmp_path / "doomed.log", tmp=tmp_path / "tmp-doomed")
        procs.append(doomed)
        _wait_for(lambda: link_log.read_bytes().count(b"Activated node_id") >= 1, PATIENCE,
                  "the first SuperNode to activate", [doomed], track=[doomed])
        [supernode] = [p for p in psutil.Process(doomed.pid).children() if "flower-supernode" in " ".join(p.cmdline())]
        supernode.kill()
        _, err = doomed.communicate(timeout=PATIENCE)
        last = err.strip().splitlines()[-1]
        assert doomed.returncode == 2, err[-2000:]
        assert last.startswith("raikit: error:") and "stopped (exit code -9)" in last, last
        assert "INFO" not in err and "Starting Flower SuperNode" in (tmp_path / "doomed.log").read_text(errors="replace")
        # issue 22.9: a failed join leaves no raikit-supernode-* folder (or anything else) in its temporary folder
        assert sorted(str(p) for p in (tmp_path / "tmp-doomed").rglob("*")) == []

        # the SuperLink ends: join ends by itself, exit 0
        staying = _join(config, port, certs["ca"], tmp_path / "staying.log", tmp=tmp_path / "tmp-staying")
        procs.append(staying)
        _wait_for(lambda: link_log.read_bytes().count(b"Activated node_id") >= 2, PATIENCE,
                  "the second SuperNode to activate", [staying], track=[staying])
        assert len(_alive()) > 1  # the join and its SuperNode at least: the count below means something
        stop_process(link)
        _, err = staying.communicate(timeout=PATIENCE)
        assert staying.returncode == 0, err[-2000:]
        assert "ended; SuperNode for partition 0 stopped" in err.strip().splitlines()[-1], err[-2000:]
        assert sorted(p.name for p in (tmp_path / "tmp-staying").iterdir()) == []
    finally:
        stop_process(link)
        _stop(procs)
        leftover = _gone_or_left(PATIENCE)
    assert not leftover, [p.cmdline()[:4] for p in leftover]
