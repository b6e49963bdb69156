"""Deployment runtime: a real SuperLink and SuperNodes in separate processes, TLS by default.

- ``make_certificates``: a private CA and a SuperLink certificate (``cryptography``), for the hosts and
  addresses the SuperNodes will dial; the CA certificate is what SuperNodes and the run submitter trust.
- ``make_supernode_keys`` / ``register_supernodes``: SuperNode authentication. Each SuperNode holds an ECDSA
  key pair (OpenSSH format, what ``flower-supernode --auth-supernode-private-key`` and ``flwr supernode
  register`` read); the SuperLink runs with ``--enable-supernode-auth`` and only the public keys registered
  through its Control API (``flwr supernode register``) may activate: an unknown key is refused (Flower's
  ``[code: 2004] Failed to activate SuperNode``), and so is a SuperNode without a key.
- ``start_superlink`` / ``start_supernode``: ``flower-superlink`` / ``flower-supernode`` subprocesses,
  each in its own process group (stopped with the whole group), the virtual environment's ``bin/`` on
  PATH (the SuperLink spawns ``flower-superexec`` by name).
- ``run_deployment``: what the ``[federated]`` section does with ``runtime = "deployment"``: write a job
  folder (initial weights, server plan), build a Flower App from it and submit it with ``flwr run`` to the
  SuperLink, wait for the ServerApp to write its log and the final weights back, read them.
- ``server_app`` / ``client_app``: the module-level apps the SuperLink and SuperNodes load. The ServerApp
  reads its job folder; each ClientApp reads the model and the partition its SuperNode's ``raikit federated
  join`` wrote to the node folder (:func:`raikit.federated._nodes.write_partition`).

Flower does the networking; raikit writes none of its own.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError, RunFailedError

__all__ = ["make_certificates", "make_supernode_keys", "key_fingerprint", "supports_supernode_auth",
           "register_supernodes", "start_superlink", "start_supernode", "stop_process", "wait_for_port",
           "run_deployment", "server_app", "client_app", "ENV_OVERRIDES", "venv_env", "check_tls", "stop_tree",
           "check_certificate"]

# raikit federated serve hands its SuperLink to the [federated] section through these variables
ENV_OVERRIDES = {"RAIKIT_FEDERATED_SUPERLINK": "superlink", "RAIKIT_FEDERATED_ROOT_CERTIFICATES": "root_certificates",
                 "RAIKIT_FEDERATED_INSECURE": "insecure"}
# ... and what it knows about SuperNode authentication (JSON: {"enabled": bool, "keys": [...]}) for the results
AUTH_ENV = "RAIKIT_FEDERATED_SUPERNODE_AUTH"


# ---------------------------------------------------------------- certificates
def make_certificates(folder: Path, hosts: list[str] | tuple[str, ...] = ("127.0.0.1", "localhost"),
                      days: int = 30) -> dict[str, Path]:
    """A CA (``ca.pem``, ``ca.key``) and a SuperLink certificate (``server.pem``, ``server.key``) valid for
    ``hosts`` (IP addresses or DNS names). Keys are ECDSA P-256, written with mode 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raikit federation CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + _dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(hosts[0]))]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "ca_key": folder / "ca.key", "cert": folder / "server.pem",
             "key": folder / "server.key"}

    def write(path: Path, data: bytes, private: bool = False) -> None:
        path.write_bytes(data)
        if private:
            path.chmod(0o600)

    pem = serialization.Encoding.PEM
    write(paths["ca"], ca.public_bytes(pem))
    write(paths["cert"], cert.public_bytes(pem))
    for name, k in (("ca_key", ca_key), ("key", key)):
        write(paths[name], k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
              private=True)
    return paths


# ---------------------------------------------------------------- SuperNode authentication
def make_supernode_keys(folder: Path, names: list[str] | tuple[str, ...]) -> list[Path]:
    """An ECDSA P-384 key pair per name: ``<name>`` (private, OpenSSH format, mode 0600) and ``<name>.pub``
    (OpenSSH public key, what gets registered). Returns the private key paths."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        key = ec.generate_private_key(ec.SECP384R1())
        private = folder / name
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
        private.chmod(0o600)
        (folder / f"{name}.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                           serialization.PublicFormat.OpenSSH)
                                             + f" raikit-{name}\n".encode())
        out.append(private)
    return out


def key_fingerprint(public_key: Path) -> str:
    """``SHA256:<base64>`` of an OpenSSH public key file (as ``ssh-keygen -l`` prints it).

    Raises
    ------
    RaikitInputError
        The file is missing or is not an ECDSA public key on a NIST curve (what Flower accepts).
    """
    import base64
    import hashlib

    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = Path(public_key).read_bytes()
        key = serialization.load_ssh_public_key(data)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"not an ECDSA key ({type(key).__name__})")
        blob = base64.b64decode(data.split()[1])
    except (OSError, ValueError, IndexError, UnsupportedAlgorithm) as exc:
        raise RaikitInputError(f"not a SuperNode public key (OpenSSH ECDSA): {exc}", where=str(public_key)) from None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_private_key(path: Path) -> None:
    """A one-line input error unless ``path`` is an OpenSSH ECDSA private key (what flower-supernode reads)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_ssh_private_key(Path(path).read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"not an ECDSA key ({type(key).__name__})")
    except FileNotFoundError:
        raise RaikitInputError(f"key file not found: {path}", where="--auth-key") from None
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RaikitInputError(f"not a SuperNode private key (OpenSSH ECDSA, unencrypted): {path}: {exc}",
                               where="--auth-key") from None


def supports_supernode_auth() -> bool:
    """Whether the installed Flower can authenticate SuperNodes by registered public keys: SuperLink flag
    ``--enable-supernode-auth``, ``flwr supernode register`` and the SuperNode's private key flag (Flower >= 1.20
    in this form)."""
    try:
        from flwr.cli.supernode import register  # noqa: F401
        from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink
        from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode

        return ("--enable-supernode-auth" in _parse_args_run_superlink().format_help()
                and "--auth-supernode-private-key" in _parse_args_run_supernode().format_help())
    except Exception:  # noqa: BLE001 (another Flower layout: no key registration raikit knows how to drive)
        return False


def _cli_home(folder: Path, superlink: str, root_certificates: Path | None, insecure: bool) -> Path:
    """A ``FLWR_HOME`` whose ``config.toml`` names ``superlink`` as the connection ``raikit``."""
    folder.mkdir(parents=True, exist_ok=True)
    conn = [f'[superlink]\ndefault = "raikit"\n\n[superlink.raikit]\naddress = "{superlink}"']
    conn.append("insecure = true" if insecure else f'root-certificates = "{Path(str(root_certificates)).resolve()}"')
    (folder / "config.toml").write_text("\n".join(conn) + "\n", encoding="utf-8")
    return folder


def register_supernodes(*, superlink: str, root_certificates: Path, public_keys: list[Path],
                        workdir: Path) -> list[dict[str, Any]]:
    """Register each public key with the SuperLink's Control API (``flwr supernode register``).

    Returns one ``{"key": file name, "fingerprint": ..., "node_id": ...}`` per key.

    Raises
    ------
    RunFailedError
        Flower refused a key (the message names the key file and Flower's reason).
    """
    home = _cli_home(workdir / "flwr-cli", superlink, root_certificates, insecure=False)
    out = []
    for key in public_keys:
        fingerprint = key_fingerprint(key)
        done = subprocess.run([_exe("flwr"), "supernode", "register", str(Path(key).resolve()), "raikit",
                               "--format", "json"], env=venv_env({"FLWR_HOME": str(home)}), capture_output=True,
                              text=True, timeout=600)  # a loaded machine makes it slow, never a failure
        try:
            reply = json.loads(done.stdout[done.stdout.index("{"):])
        except ValueError:
            reply = {}
        if done.returncode != 0 or not reply.get("success"):
            why = (reply.get("error-message") or done.stderr or done.stdout).strip().splitlines()
            raise RunFailedError(f"the SuperLink {superlink} refused SuperNode key {key}: "
                                 f"{why[-1] if why else 'exit ' + str(done.returncode)}")
        out.append({"key": Path(key).name, "fingerprint": fingerprint, "node_id": str(reply["node-id"])})
    return out


# ---------------------------------------------------------------- processes
def venv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Flower's executables: this interpreter's ``bin/`` first on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def _exe(name: str) -> str:
    found = shutil.which(name, path=venv_env()["PATH"])
    if not found:
        raise RaikitInputError(f"{name} not found next to {sys.executable}; install flwr in this environment")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``host:port`` accepts TCP connections (fails early if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RunFailedError(f"the process serving {host}:{port} exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RunFailedError(f"nothing answered on {host}:{port} within {timeout:g} s")


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the parent dies, so a SIGKILLed ``join`` leaves no SuperNode."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def adopt_orphans() -> bool:
    """Make this process a child subreaper (Linux): processes its children start and leave behind when they die
    (a killed SuperNode's superexec and ClientApps) become its children, so :func:`stop_descendants` finds them."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def stop_descendants(*, since: float, timeout: float = 10.0) -> None:
    """Stop every live descendant of this process started at or after ``since`` (a ``time.time()``):
    SIGTERM, then SIGKILL after ``timeout``, and reap them."""
    import psutil

    tree = []
    with _suppress_gone():
        tree = [p for p in psutil.Process().children(recursive=True) if p.create_time() >= since - 1.0]
    _terminate_all(tree, timeout)


def _popen(cmd: list[str], log: Path | None, env: dict[str, str], new_session: bool = True,
           die_with_parent: bool = False) -> subprocess.Popen:
    """Start ``cmd`` with its output appended to ``log`` (inherited when None), in a process group of its own."""
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 (the child keeps it)
    try:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None, env=env,
                                start_new_session=new_session,
                                preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None)
    finally:
        if log is not None:
            out.close()


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop ``proc`` and its process group: SIGTERM, then SIGKILL after ``timeout``."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # children that outlived the leader are still in its group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_superlink(*, host: str = "127.0.0.1", port: int = 9093, certs: dict[str, Path] | None = None,
                    insecure: bool = False, supernode_auth: bool = False, workdir: Path, log: Path | None = None,
                    timeout: float = 600.0) -> subprocess.Popen:
    """Start ``flower-superlink`` (Fleet, Control and ServerAppIo APIs on ``host:port``) and wait for it.

    With ``supernode_auth`` only SuperNodes whose public key was registered (:func:`register_supernodes`)
    can activate; Flower requires TLS for it."""
    if certs is None and not insecure:
        raise RaikitInputError("a SuperLink needs certificates (or --insecure)")
    if supernode_auth and insecure:
        raise RaikitInputError("SuperNode authentication needs TLS (Flower refuses it with --insecure)",
                               where="--insecure")
    cmd = [_exe("flower-superlink"), "--host", host, "--port", str(port),
           "--database", str(workdir / "superlink.db"), "--disable-runtime-dependency-installation"]
    if supernode_auth:
        cmd.append("--enable-supernode-auth")
    if insecure:
        cmd.append("--insecure")
    else:
        assert certs is not None
        cmd += ["--ssl-ca-certfile", str(certs["ca"]), "--ssl-certfile", str(certs["cert"]),
                "--ssl-keyfile", str(certs["key"])]
    proc = _popen(cmd, log, venv_env({"FLWR_HOME": str(workdir / "flwr-home")}))
    try:
        wait_for_port("127.0.0.1" if host in ("0.0.0.0", "::") else host, port, timeout, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def start_supernode(*, superlink: str, node: Path, partition: int, root_certificates: Path | None,
                    insecure: bool = False, auth_key: Path | None = None, port: int | None = None, workdir: Path,
                    log: Path | None = None, max_wait: float = 600.0, new_session: bool = True) -> subprocess.Popen:
    """Start ``flower-supernode`` serving the partition :func:`raikit.federated._nodes.write_partition` wrote
    to ``node``, authenticating with the private key ``auth_key`` when given."""
    node_config = f'raikit-node="{Path(node).resolve()}" partition-id={int(partition)}'
    cmd = [_exe("flower-supernode"), "--superlink", superlink, "--node-config", node_config,
           "--host", "127.0.0.1", "--port", str(port or free_port()), "--max-wait-time", str(max_wait)]
    if insecure:
        cmd.append("--insecure")
    else:
        if root_certificates is None or not Path(root_certificates).is_file():
            raise RaikitInputError(f"certificate file not found: {root_certificates}", where="--root-certificates")
        cmd += ["--root-certificates", str(Path(root_certificates).resolve())]
    if auth_key is not None:
        if insecure:
            raise RaikitInputError("SuperNode authentication needs TLS (Flower refuses a key with --insecure)",
                                   where="--auth-key")
        check_private_key(Path(auth_key))
        cmd += ["--auth-supernode-private-key", str(Path(auth_key).resolve())]
    workdir.mkdir(parents=True, exist_ok=True)
    return _popen(cmd, log, venv_env({"FLWR_HOME": str(workdir / "flwr-home")}), new_session=new_session,
                  die_with_parent=not new_session)


def check_certificate(path: Path, *, where: str = "--root-certificates") -> None:
    """A one-line input error unless ``path`` holds at least one PEM X.509 certificate (what gRPC reads)."""
    from cryptography import x509

    try:
        data = Path(path).read_bytes()
        if not x509.load_pem_x509_certificates(data):
            raise ValueError("no certificate in the file")
    except FileNotFoundError:
        raise RaikitInputError(f"certificate file not found: {path}", where=where) from None
    except (OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RaikitInputError(f"not a PEM certificate: {path} ({reason[:200]})", where=where) from None


def check_tls(address: str, *, root_certificates: Path | None, insecure: bool, timeout: float = 120.0) -> None:
    """Check before a SuperNode starts that the SuperLink at ``address`` speaks what we will speak to it.

    With TLS, a handshake verified against ``root_certificates`` must succeed (a wrong CA is named at once,
    where flower-supernode would retry for minutes); with ``insecure`` the SuperLink must *not* complete a TLS
    handshake (an insecure client against a TLS SuperLink would hang).

    Raises
    ------
    RaikitInputError
        Naming the flag and the address.
    """
    import ssl

    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        check_certificate(Path(str(root_certificates)))
        context = ssl.create_default_context(cafile=str(root_certificates))
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            spoke_tls = True
    except ssl.SSLCertVerificationError as exc:
        raise RaikitInputError(f"the SuperLink {address} has a certificate this CA does not verify "
                               f"({exc.verify_message}): is it the ca.pem of this SuperLink's serve?",
                               where="--root-certificates") from None
    except (ssl.SSLError, ConnectionError) as exc:
        if insecure:
            return  # no TLS handshake: a plain (insecure) SuperLink, as asked
        raise RaikitInputError(f"no TLS handshake with the SuperLink {address} ({type(exc).__name__}): is it "
                               "running with --insecure?", where="--root-certificates") from None
    except OSError as exc:
        raise RaikitInputError(f"SuperLink {address} is unreachable ({type(exc).__name__}: {exc})",
                               where="--superlink") from None
    if insecure and spoke_tls:
        raise RaikitInputError(f"the SuperLink {address} uses TLS: drop --insecure and pass its CA with "
                               "--root-certificates", where="--insecure")


def stop_tree(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop ``proc`` and every process it started (flower-supernode's superexec and ClientApps), whatever
    process group they are in: SIGTERM to all, SIGKILL to what is left after ``timeout``."""
    if proc is None:
        return
    import psutil

    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    _terminate_all(tree, timeout)
    with _suppress_gone():
        proc.wait(timeout=5)


def _terminate_all(tree: list[Any], timeout: float) -> None:
    """SIGTERM every process of ``tree`` (psutil processes), SIGKILL what is left after ``timeout``, reap them."""
    import psutil

    for p in tree:
        with _suppress_gone():
            p.terminate()
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    for p in alive:
        with _suppress_gone():
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def _suppress_gone() -> Any:
    import contextlib

    import psutil

    return contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError,
                               subprocess.TimeoutExpired)


def reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at ``address`` (``host:port``)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line input error naming ``address`` when nothing listens there."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise RaikitInputError(f"SuperLink {address} is unreachable ({type(exc).__name__}: {exc})",
                               where="key 'superlink'") from None


# ---------------------------------------------------------------- the apps the SuperLink and SuperNodes load
_APP_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "raikit-federated"
version = "1.0.0"
description = "raikit federated retraining (the apps live in the installed raikit package)"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "raikit"

[tool.flwr.app.components]
serverapp = "raikit_fed_app:server_app"
clientapp = "raikit_fed_app:client_app"

[tool.flwr.app.config]
raikit-job = ""
"""
_APP_MODULE = ("import raikit.federated._deploy as _raikit\n\n"
               "server_app = _raikit.server_app\nclient_app = _raikit.client_app\n")


def _client_task(context: Any) -> Any:
    """This SuperNode's task and partition, from the folder ``raikit federated join`` prepared (the model loaded
    once per process)."""
    from raikit.federated._task import client_from_folder

    return client_from_folder(str(context.node_config["raikit-node"]), context)


def _server_task(context: Any) -> Any:
    import torch  # noqa: F401
    from safetensors.torch import load_file

    from raikit.federated._flower import ServerPlan

    job = Path(str(context.run_config["raikit-job"]))
    plan = ServerPlan(**json.loads((job / "plan.json").read_text(encoding="utf-8")))
    return load_file(str(job / "initial.safetensors")), plan


def _server_done(log: Any, context: Any) -> None:
    from safetensors.torch import save_file

    job = Path(str(context.run_config["raikit-job"]))
    if log.final_state:
        save_file({k: v.contiguous() for k, v in log.final_state.items()}, str(job / "final.safetensors"))
    tmp = job / "log.json.tmp"
    tmp.write_text(json.dumps(log.to_json()), encoding="utf-8")
    tmp.replace(job / "log.json")


def _build() -> tuple[Any, Any]:
    from raikit.federated._flower import build_apps

    return build_apps(_server_task, _client_task, _server_done)


server_app, client_app = _build()


# ---------------------------------------------------------------- submitting a run
def submit_run(*, job: Path, superlink: str, root_certificates: Path | None, insecure: bool,
               log: Path) -> subprocess.Popen:
    """``flwr run`` of the raikit app against ``superlink`` with ``raikit-job`` pointing at ``job``."""
    app = job / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(_APP_PYPROJECT, encoding="utf-8")
    (app / "raikit_fed_app.py").write_text(_APP_MODULE, encoding="utf-8")
    home = _cli_home(job / "flwr-home", superlink, root_certificates, insecure)
    cmd = [_exe("flwr"), "run", str(app), "raikit", "--run-config", f'raikit-job="{job.resolve()}"', "--stream"]
    return _popen(cmd, log, venv_env({"FLWR_HOME": str(home)}))


def run_deployment(o: Any, ctx: Any, state: dict[str, Any], plan: Any) -> tuple[Any, float, dict[str, Any]]:
    """Submit the federated run to the SuperLink in ``o.superlink`` and wait for its result.

    Returns the server's RoundLog, the wall time, and transport facts for the report.
    """
    import dataclasses

    from safetensors.torch import load_file, save_file

    from raikit.federated._flower import RoundLog

    raise_if = o.root_certificates and not o.insecure
    certs = ctx.resolve_path(o.root_certificates) if raise_if else None
    if certs is not None and not certs.is_file():
        raise RaikitInputError(f"certificate file not found: {certs}", where="key 'root_certificates'")
    check_reachable(o.superlink)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="raikit-federated-") as tmp:
        job = Path(tmp)
        job.chmod(0o700)
        save_file({k: v.contiguous() for k, v in state.items()}, str(job / "initial.safetensors"))
        (job / "plan.json").write_text(json.dumps(dataclasses.asdict(plan)), encoding="utf-8")
        runner = submit_run(job=job, superlink=o.superlink, root_certificates=certs, insecure=o.insecure,
                            log=job / "flwr-run.log")
        limit = plan.join_timeout + plan.rounds * 2 * plan.round_timeout + 120
        try:
            while not (job / "log.json").exists():
                if time.perf_counter() - started > limit:
                    raise RunFailedError(f"[federated]: no result from the SuperLink {o.superlink} within {limit:g} s")
                if runner.poll() is not None and runner.returncode != 0:
                    tail = (job / "flwr-run.log").read_text(errors="replace").strip().splitlines()[-3:]
                    raise RunFailedError(f"[federated]: flwr run against {o.superlink} failed: {' | '.join(tail)}")
                time.sleep(0.5)
        finally:
            stop_process(runner, timeout=5)
        log = RoundLog.from_json(json.loads((job / "log.json").read_text(encoding="utf-8")))
        if (job / "final.safetensors").exists():
            log.final_state = load_file(str(job / "final.safetensors"))
    auth = json.loads(os.environ.get(AUTH_ENV) or "null") or {
        "enabled": None, "why": "unknown: the SuperLink was not started by raikit federated serve"}
    transport = {"runtime": "deployment", "superlink": o.superlink, "tls": not o.insecure,
                 "insecure": bool(o.insecure), "root_certificates": str(certs) if certs else None,
                 "supernode_auth": auth}
    return log, time.perf_counter() - started, transport
