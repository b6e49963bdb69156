"""CLI friction (issue 14 item 9): gate without --config, quiet diff, --formats help, no silent overwrite,
plain progress lines when stderr is not a terminal."""
from __future__ import annotations

import copy
import dataclasses
import io
import itertools
import json
import os
import subprocess
import sys
import tomllib

import pytest

from raikit.audits.cli import build_parser, main

_METRICS = {
    "fairness.crows_pairs.metric_score": {"value": 55.0, "ci95": [50.0, 60.0], "n": 150},
    "fairness.stereoset.icat": {"value": 40.0, "ci95": [35.0, 45.0], "n": 100},
    "fairness.counterfactual.flip_rate": {"value": 0.02, "ci95": [0.01, 0.04], "n": 300},
    "explain.shap.comprehensiveness": {"value": 0.3, "ci95": [0.2, 0.4], "n": 8},
    "fairness.seat.weat6.effect_size": {"value": 1.2, "ci95": [0.8, 1.6], "n": 16},
}


def _results(tmp_path, name="results.json", metrics=None):
    path = tmp_path / name
    path.write_text(json.dumps({"schema_version": "1.0", "run": {"id": name}, "metrics": metrics or _METRICS,
                                "gates": []}))
    return path


def test_gate_without_config_applies_the_gates_recorded_in_the_run(tmp_path, capsys):
    """Issue 22 item 10: a run is re-judged by its own config's gates, never by the demo's."""
    from raikit.audits.runner import default_config_text

    path = _results(tmp_path)
    results = json.loads(path.read_text())
    results["config"] = {"gates": {"fairness.seat.weat6.effect_size": {"max": 1.0, "use": "ci"}}}
    path.write_text(json.dumps(results))
    code = main(["gate", str(path)])
    out = capsys.readouterr().out
    assert code == 1 and "gates recorded in the run (1;" in out
    assert "FAIL fairness.seat.weat6.effect_size" in out and "gates: 0 passed, 1 failed" in out
    for metric in tomllib.loads(default_config_text())["gates"]:  # the demo's gates are not applied
        assert metric not in out
    # a run whose config had no gates makes no claim; an older results.json without its config is judged
    # by the gates it recorded
    results["config"] = {"run": {"seed": 0}}
    path.write_text(json.dumps(results))
    assert main(["gate", str(path)]) == 0
    assert "gates: 0 passed, 0 failed" in capsys.readouterr().out
    del results["config"]
    results["gates"] = [{"metric": "fairness.stereoset.icat", "min": 50.0, "max": None, "use": "value",
                         "clause": None, "passed": True}]
    path.write_text(json.dumps(results))
    assert main(["gate", str(path)]) == 1  # 40 < 50: judged again on the recorded threshold
    assert "FAIL fairness.stereoset.icat" in capsys.readouterr().out
    assert main(["gate", str(path), "--config", str(_gates_toml(tmp_path))]) == 0
    assert "PASS fairness.counterfactual.flip_rate" in capsys.readouterr().out


def _gates_toml(tmp_path):
    path = tmp_path / "gates.toml"
    path.write_text('[gates]\n"fairness.counterfactual.flip_rate" = { max = 0.1 }\n')
    return path


def test_diff_into_a_closed_pipe_ends_quietly(tmp_path):
    """Issue 22 item 10: ``raikit diff a b --all | head -1`` must not end in a BrokenPipeError traceback."""
    many = {f"fairness.seat.t{i}.effect_size": {"value": float(i), "ci95": [i - 0.1, i + 0.1], "n": 16}
            for i in range(20000)}
    old, new = _results(tmp_path, "old.json", many), _results(tmp_path, "new.json", many)
    cmd = f"{sys.executable} -m raikit.audits.cli diff {old} {new} --all | head -n 1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.stdout.count("\n") == 1
    assert "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr and "Exception" not in done.stderr
    assert done.returncode == 141, done.stderr


def test_diff_of_a_run_against_itself_says_nothing_moved(tmp_path, capsys):
    path = _results(tmp_path)
    assert main(["diff", str(path), str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"nothing moved: {len(_METRICS)} metrics, all identical"


def test_diff_lists_only_rows_that_moved_unless_all(tmp_path, capsys):
    new = copy.deepcopy(_METRICS)
    new["fairness.seat.weat6.effect_size"] = {"value": 0.1, "ci95": [0.0, 0.3], "n": 16}  # beyond both CIs
    new["fairness.crows_pairs.metric_score"] = {"value": 56.0, "ci95": [51.0, 61.0], "n": 150}  # within
    del new["explain.shap.comprehensiveness"]
    old_path, new_path = _results(tmp_path, "old.json"), _results(tmp_path, "new.json", new)
    assert main(["diff", str(old_path), str(new_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    listed = {line.split()[1] if line.startswith(("*", "!")) else line.split()[0] for line in lines[1:-1]}
    assert listed == {"fairness.seat.weat6.effect_size", "explain.shap.comprehensiveness"}
    assert "1 changed within their CI" in lines[-1] and "3 unchanged or within their CI not listed" in lines[-1]
    assert main(["diff", str(old_path), str(new_path), "--all"]) == 0
    every = capsys.readouterr().out
    assert all(name in every for name in _METRICS) and "not listed" not in every


def test_formats_help_lists_every_format():
    from raikit.audits.config import REPORT_FORMATS
    from raikit.reports import REPORT_FILES

    report = build_parser()._subparsers._group_actions[0].choices["report"]  # noqa: SLF001
    text = " ".join(report.format_help().split())
    assert list(REPORT_FILES) == list(REPORT_FORMATS)
    assert "any of: html (the HTML report), md (Markdown summary)" in text
    for fmt in REPORT_FILES:
        assert f"{fmt} (" in text


def test_report_refuses_to_overwrite_without_force(tmp_path, capsys):
    results = _results(tmp_path)
    assert main(["report", str(results), "--formats", "md,junit"]) == 0
    capsys.readouterr()
    (tmp_path / "summary.md").write_text("edited by hand")
    with pytest.raises(SystemExit) as err:
        main(["report", str(results), "--formats", "md,junit"])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "summary.md: already exists" in lines[0] and "--force" in lines[0]
    assert (tmp_path / "summary.md").read_text() == "edited by hand"
    assert main(["report", str(results), "--formats", "md,junit", "--force"]) == 0
    assert (tmp_path / "summary.md").read_text() != "edited by hand"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp file


def test_report_out_writes_there_and_leaves_report_html_beside_it_alone(tmp_path, capsys):
    results = _results(tmp_path)
    (tmp_path / "report.html").write_text("an earlier report")
    assert main(["report", str(results), "--formats", "html", "--out", str(tmp_path / "other.html")]) == 0
    assert "other.html" in capsys.readouterr().out
    assert (tmp_path / "report.html").read_text() == "an earlier report"
    assert (tmp_path / "other.html").read_text().lstrip().lower().startswith("<!doctype html")


def test_plain_progress_prints_whole_lines_about_every_tenth():
    from raikit.audits.progress import PlainProgress

    out, clock = io.StringIO(), itertools.count(0.0, 1.0)
    bar = PlainProgress(total=100, desc="m: scoring", unit="item", file=out, min_interval=0.0,
                        clock=lambda: next(clock))
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10 and lines[0].startswith("m: scoring:  10% 10/100") and "100% 100/100" in lines[-1]


def test_plain_progress_is_silent_for_short_jobs_and_prints_while_slow_ones_go_on():
    from raikit.audits.progress import PlainProgress

    out = io.StringIO()
    quick = PlainProgress(total=50, desc="quick", file=out, clock=lambda: 0.0)
    for _ in range(50):
        quick.update(1)
    quick.close()
    assert out.getvalue() == ""
    clock = itertools.count(0.0, 40.0)  # 40 s per unit: every update is past max_interval
    slow = PlainProgress(total=1000, desc="slow", file=out, clock=lambda: next(clock))
    slow.update(1)
    slow.update(1)
    slow.close()
    assert out.getvalue().splitlines()[-1].startswith("slow:   0% 2/1000")


def test_progress_bar_is_plain_when_stderr_is_not_a_terminal(monkeypatch):
    from raikit.audits.progress import PlainProgress, progress_bar

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(progress_bar(total=3, desc="x"), PlainProgress)
    off = progress_bar(total=3, desc="x", disable=True)
    off.update(3)
    off.close()
    assert sys.stderr.getvalue() == ""


def test_a_non_terminal_audit_run_writes_no_carriage_returns(tmp_path):
    """A real audit with stderr to a pipe: progress comes as plain lines, never '\\r' redraws."""
    cfg = tmp_path / "a.toml"
    cfg.write_text('[models.m]\nid = "builtin:minilm-l6"\nbatch_size = 2\n'
                   '[fairness.seat]\ntests = ["weat6"]\nn_samples = 200\nn_bootstrap = 50\n'
                   '[report]\nformats = []\n')
    script = ("import sys; import raikit.audits.progress as p; "
              "p.PlainProgress.__init__.__kwdefaults__['min_interval'] = 0.0; "  # lines even for a quick run
              "from raikit.audits.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, "audit", str(cfg), "--out", str(tmp_path / "out"),
                           "--offline"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    assert any(line.startswith("builtin:minilm-l6: embedding: 100%") for line in proc.stderr.splitlines()), proc.stderr


@pytest.mark.parametrize(("section", "old"), [("explain", "max_texts"), ("honest", "max_templates"),
                                              ("fill_mask", "max_instances"), ("counterfactual", "max_instances"),
                                              ("behaviour", "max_instances"), ("groups", "max_instances")])
def test_old_subsample_names_are_read_as_max_items_with_a_one_line_warning(section, old):
    from raikit.audits.config import RenamedKeyWarning, validate_options
    from raikit.audits.runner import available_sections

    table, spec = available_sections()[section]
    with pytest.warns(RenamedKeyWarning) as caught:
        options, problems = validate_options({old: 7}, spec.options, where=f"a.toml: [{table}]")
    assert problems == [] and options.max_items == 7
    assert [str(w.message) for w in caught] == [
        f"a.toml: [{table}]: key '{old}' is deprecated; write 'max_items' (same meaning)"]


def test_old_and_new_subsample_names_together_are_an_error():
    from raikit.audits.config import validate_options
    from raikit.explain._section import ExplainOptions

    options, problems = validate_options({"max_texts": 3, "max_items": 4}, ExplainOptions, where="a.toml: [explain]")
    assert options is None and problems == [
        "a.toml: [explain]: keys 'max_texts' and 'max_items' are one option ('max_texts' is its old name); "
        "keep only 'max_items'"]


def test_every_section_names_its_subsample_max_items():
    from raikit.audits.config import RENAMED_KEYS
    from raikit.audits.runner import available_sections

    for name, (_, section) in available_sections().items():
        fields = {f.name for f in dataclasses.fields(section.options)}
        assert not fields & set(RENAMED_KEYS), name


def test_cli_prints_the_renamed_key_warning_as_one_line(tmp_path):
    cfg = tmp_path / "old.toml"
    cfg.write_text('[models.clf]\nid = "builtin:minilm-sentiment"\n[explain]\nmax_texts = 2\nbogus = 1\n')
    proc = subprocess.run([sys.executable, "-m", "raikit.audits.cli", "audit", str(cfg), "--out",
                           str(tmp_path / "out"), "--offline"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"raikit: warning: {cfg}: [explain]: key 'max_texts' is deprecated; write 'max_items' (same meaning)",
        f"raikit: error: {cfg}: [explain]: unknown key 'bogus'; allowed: methods, texts, texts_file, max_items, "
        "shap_max_evals, lime_num_samples, top_k, random_baseline, max_flagged, group_size"]


def test_probes_says_what_every_option_does_with_its_type_and_default(capsys):
    from raikit.audits.config import option_docs
    from raikit.audits.runner import available_sections

    for name, (_, section) in available_sections().items():
        assert main(["probes", name]) == 0
        out = capsys.readouterr().out
        comments = " ".join(line[2:].strip() for line in out.splitlines() if line.startswith("#"))
        for doc in option_docs(section.options):
            assert doc.description, f"{name}.{doc.name} is not documented in its options class"
            assert f"{doc.name} ({doc.type}): {doc.description.replace('``', '`')}" in comments
    assert main(["probes", "explain"]) == 0
    out = capsys.readouterr().out
    assert "# max_items (integer): Explain at most this many texts" in out and "\nmax_items = 20\n" in out


def test_option_docs_reads_grouped_and_untyped_numpydoc_entries():
    import dataclasses

    from raikit.audits.config import option_docs

    @dataclasses.dataclass(frozen=True)
    class Options:
        """Options.

        Parameters
        ----------
        a, b : int
            Two counts
            over two lines.
        c
            No type given.
        d : str

        Notes
        -----
        e : int
            Not a parameter.
        """

        a: int = 1
        b: int = 2
        c: list[str] = dataclasses.field(default_factory=list)
        d: str = ""
        e: int = 0

    docs = {d.name: d for d in option_docs(Options)}
    assert docs["a"].description == docs["b"].description == "Two counts over two lines."
    assert docs["c"].description == "No type given." and docs["c"].type == "list of string"
    assert docs["d"].description == "" and docs["e"].description == ""
    assert docs["b"].default == 2


def test_federated_join_takes_the_config_as_an_argument_like_serve(tmp_path, capsys):
    from raikit.federated._deploy import free_port

    cfg = tmp_path / "fed.toml"
    cfg.write_text("[run]\nseed = 0\n")
    dead = f"127.0.0.1:{free_port()}"
    for config_args in ([str(cfg)], ["--config", str(cfg)], [str(cfg), "--config", str(cfg)]):
        with pytest.raises(SystemExit) as err:
            main(["federated", "join", *config_args, "--partition", "0", "--superlink", dead, "--insecure"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert err.value.code == 2 and len(lines) == 1 and f"SuperLink {dead} is unreachable" in lines[0], lines
    for config_args, expected in (([], "the audit TOML the SuperLink runs is needed"),
                                  ([str(cfg), "--config", "other.toml"], "two different configs"),
                                  ([str(tmp_path / "nope.toml")], "nope.toml: config file not found")):
        with pytest.raises(SystemExit) as err:
            main(["federated", "join", *config_args, "--partition", "0", "--insecure"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert err.value.code == 2 and len(lines) == 1 and expected in lines[0], lines


def test_serve_on_every_interface_certifies_and_advertises_a_name_other_machines_can_use():
    import socket

    from raikit.federated import advertised

    names, address = advertised("127.0.0.1", 9093, [])
    assert names == ["127.0.0.1", "localhost"] and address == "127.0.0.1:9093"
    names, address = advertised("0.0.0.0", 9100, ["fl.example.org"])
    assert address == "fl.example.org:9100" and "0.0.0.0" not in names
    assert {"127.0.0.1", "localhost", "fl.example.org", socket.gethostname()} <= set(names)
    names, address = advertised("0.0.0.0", 9093, [])
    own = {n for n in (socket.getfqdn(), socket.gethostname()) if n and n != "localhost"}
    assert address.rsplit(":", 1)[0] in names and address.rsplit(":", 1)[0] in (own or {"127.0.0.1"})
    names, address = advertised("10.1.2.3", 9093, ["fl.example.org"])
    assert address == "10.1.2.3:9093" and names == ["127.0.0.1", "localhost", "10.1.2.3", "fl.example.org"]
