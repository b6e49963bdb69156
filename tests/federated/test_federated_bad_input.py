"""Bad [federated] input and bad `raikit federated` flags: one line naming the key or address, exit 2,
nothing written, before any model loads."""
from __future__ import annotations

import atexit
import socket
from pathlib import Path

import pytest

import synth
from raikit.audits.cli import main
from raikit.federated._deploy import free_port

# A port bound by this module and never listened on, held for the whole run: nothing can answer there, and no
# other test (a SuperLink picking a free port) can take it, as it could take a port merely found free.
_HELD = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_HELD.bind(("127.0.0.1", 0))
DEAD = f"127.0.0.1:{_HELD.getsockname()[1]}"
atexit.register(_HELD.close)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("federated_bad")
    synth.make_task(root)
    return root


def _config(root: Path, federated: str) -> Path:
    path = root / "audit.toml"
    path.write_text('[run]\nseed = 0\ndevice = "cpu"\n[models.clf]\nid = "clf"\n'
                    f'[federated]\nmodel = "clf"\ndata = "data.csv"\nmax_length = 16\n{federated}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("federated,expected", [
    ("clients = 2\nmin_clients = 3", "key 'clients': 2 clients is fewer than min_clients = 3"),
    ('partition = "dirichlet"\nalpha = 0.0', "key 'alpha': must be a finite number > 0, got 0.0"),
    ('partition = "dirichlet"\nalpha = -0.5', "key 'alpha': must be a finite number > 0, got -0.5"),
    ('partition = "group"', "key 'partition': 'group' needs group_column"),
    ('group_column = "group"\npartition = "group"\nmin_clients = 4', "key 'clients': 3 groups is fewer than min_clients = 4"),
    ("clients_per_round = 1", "key 'clients_per_round': 1 is fewer than min_clients = 2"),
    ("evaluate_clients_per_round = 4", "key 'evaluate_clients_per_round': 4 is more than the 3 clients"),
    ("evaluate_clients_per_round = -1", "key 'evaluate_clients_per_round': must be >= 0, got -1"),
    ('strategy = "fedsgd"', "key 'strategy': must be one of fedavg, fedprox, got 'fedsgd'"),
    ("client_dp = true\ncentral_dp = true", "key 'central_dp': client_dp and central_dp are alternatives"),
    (f'runtime = "deployment"\nsuperlink = "{DEAD}"\ninsecure = true', f"key 'superlink': SuperLink {DEAD} is unreachable"),
    ('runtime = "deployment"\nroot_certificates = "missing-ca.pem"', "key 'root_certificates': certificate file not found"),
    ('runtime = "deployment"', "key 'root_certificates': a deployment needs the SuperLink's CA certificate"),
    ("rounds = 0", "key 'rounds': must be >= 1, got 0"),
    ('client_dp = true\naccountant = "gdp"', "key 'accountant': 'gdp' is refused for a reported epsilon"),
    ("client_dp = true\nepsilon = 1e4", "key 'epsilon': must be at most 100"),
    ("client_dp = true\ndelta = 0.05", "key 'delta': must be below 1/n"),
])
def test_bad_federated_config_is_one_line_exit_2(root, tmp_path, capsys, federated, expected):
    config = _config(root, federated)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[federated]" in err[0] and expected in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags,expected", [
    (["--superlink", DEAD, "--insecure"], f"--superlink: SuperLink {DEAD} is unreachable"),
    (["--superlink", DEAD, "--root-certificates", "missing-ca.pem"], "--root-certificates: certificate file not found"),
    (["--superlink", DEAD], "--root-certificates: the SuperLink's CA certificate is needed"),
    (["--superlink", "nowhere", "--insecure"], "--superlink: must be host:port"),
])
def test_bad_join_flags_are_one_line_exit_2(root, capsys, flags, expected):
    config = _config(root, "")
    with pytest.raises(SystemExit) as exit_info:
        main(["federated", "join", "--config", str(config), "--partition", "0", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_serve_refuses_a_missing_config_and_an_incomplete_certificate_folder(root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["federated", "serve", str(tmp_path / "nope.toml")])
    assert exit_info.value.code == 2 and "config file not found" in capsys.readouterr().err
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.pem").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["federated", "serve", str(_config(root, "")), "--certs", str(certs), "--port", str(free_port())])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "incomplete certificate folder" in err[0], err


def test_bad_supernode_keys_are_one_line_exit_2(root, tmp_path, capsys):
    config = _config(root, "")
    ca = tmp_path / "ca.pem"
    ca.write_text("only its presence is checked before the SuperLink is dialled")
    not_a_key = tmp_path / "key"
    not_a_key.write_text("not a key")
    cases = [
        (["join", "--config", str(config), "--partition", "0", "--superlink", DEAD, "--root-certificates", str(ca),
          "--auth-key", str(tmp_path / "missing")], "--auth-key: key file not found"),
        (["join", "--config", str(config), "--partition", "0", "--superlink", DEAD, "--root-certificates", str(ca),
          "--auth-key", str(not_a_key)], "--auth-key: not a SuperNode private key"),
        (["join", "--config", str(config), "--partition", "0", "--superlink", DEAD, "--insecure",
          "--auth-key", str(not_a_key)], "--auth-key: SuperNode authentication needs TLS"),
        (["serve", str(config), "--port", str(free_port()), "--certs", str(tmp_path / "certs"), "--out",
          str(tmp_path / "out"), "--authorize", str(not_a_key)], f"{not_a_key}: not a SuperNode public key"),
    ]
    for flags, expected in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["federated", *flags])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1 and expected in err[0], (flags, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "certs").exists()


@pytest.mark.parametrize("federated,expected", [
    ("rounds = 0", "[federated]: key 'rounds': must be >= 1, got 0"),
    ("clients = 2\nmin_clients = 3", "key 'clients': 2 clients is fewer than min_clients = 3"),
])
def test_serve_with_a_bad_config_writes_no_certificate_or_key(root, tmp_path, capsys, federated, expected):
    """Issue 22.6: the config is validated before the CA, the SuperLink's key or any SuperNode key is written."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["federated", "serve", str(_config(root, federated)), "--port", str(free_port()), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and expected in err[0], err
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))


def test_serve_with_a_model_that_does_not_load_removes_what_it_wrote(root, tmp_path, capsys):
    """A bad model is found only when the run loads it, after the SuperLink started: its certificates go again."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    config = tmp_path / "audit.toml"
    config.write_text(_config(root, "").read_text().replace('id = "clf"', f'id = "{broken}"')
                      .replace('data = "data.csv"', f'data = "{root / "data.csv"}"'))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["federated", "serve", str(config), "--port", str(free_port()), "--out", str(out), "--insecure",
              "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and "[models.clf]: key 'id'" in err[-1], err
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))
