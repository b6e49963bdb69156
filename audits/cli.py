"""The ``raikit`` command line.

Commands: ``audit``, ``report``, ``gate``, ``diff``, ``models``. Exit codes: 0 when every gate
passes, 1 when a gate fails (or ``diff`` finds a regression), 2 on bad input or a failed run.
Errors are one line each on stderr; ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import signal
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitError, RaikitInputError, RenamedKeyWarning, RunInterrupted
from raikit.audits.escape import for_terminal
from raikit.audits.offline import offline_from_env, set_offline

__all__ = ["main", "build_parser"]


#: ``raikit report --formats`` values and what each is (the keys of ``raikit.reports.REPORT_FILES``, kept here
#: so that building the parser imports no report code; a test checks they agree).
_REPORT_FORMATS = {"html": "the HTML report", "md": "Markdown summary", "junit": "JUnit XML, one case per gate",
                   "model_card": "Hugging Face model card"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"raikit: error: {for_terminal(message)} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


@contextlib.contextmanager
def _clean_errors(debug: bool) -> Iterator[None]:
    """Turn any failure into one-line messages and exit code 2 (traceback only with --debug).

    Exit codes: a gate result (0 or 1) is returned by the command; every other way of ending is 2, except
    an interrupt: 130 for SIGINT (Ctrl-C) and 143 for SIGTERM, each with one line saying how to resume, and
    141 (a command ended by SIGPIPE) when the reader of its output went away (``raikit diff a b | head``).
    An ignored SIGINT (inherited by a shell's background job or under ``nohup``) stays ignored: raikit
    installs no SIGINT handler of its own, so only SIGTERM stops such a run.
    """
    try:
        yield
    except RaikitInputError as exc:
        if debug:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"raikit: error: {for_terminal(line)}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunInterrupted as exc:
        print(f"raikit: {for_terminal(exc)}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("raikit: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:
        # the reader went away (`raikit diff a b | head`): stop quietly, as a command killed by SIGPIPE would
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        raise SystemExit(141) from None
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001  (never exit 1, the code of a failed gate, for a crash)
        if debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        what = "run failed" if isinstance(exc, RaikitError) else f"run failed: {type(exc).__name__}"
        print(f"raikit: error: {for_terminal(what)}: {for_terminal(first)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        raise SystemExit(2) from None


def _on_sigterm(signum: int, frame: Any) -> None:
    raise RunInterrupted("terminated (SIGTERM)", exit_code=128 + signum)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``raikit`` command."""
    parser = _Parser(prog="raikit", description="Responsible-AI audits of HuggingFace models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_scan_parser(sub)

    audit = sub.add_parser("audit", help="run an audit (the embedded default when no config is given)")
    audit.add_argument("config", nargs="?", help="audit TOML file (default: the embedded default audit)")
    audit.add_argument("--out", default="out", help="parent folder of the run folder (default: out)")
    audit.add_argument("--seed", type=int, help="override [run] seed")
    audit.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override [run] device")
    audit.add_argument("--offline", action="store_true", help="never touch the network (also HF_HUB_OFFLINE=1)")
    audit.add_argument("--resume", action="store_true", help="reuse sections finished by the last run of this config")
    audit.add_argument("--quiet", action="store_true", help="no progress output")
    audit.add_argument("--print-default", action="store_true", help="print the embedded default config and exit")

    report = sub.add_parser("report", help="re-render every report from a results.json")
    report.add_argument("results", help="results.json of a run")
    report.add_argument("--out", help="report.html path (default: beside results.json); other files go beside it")
    report.add_argument("--formats", default=",".join(_REPORT_FORMATS), metavar="LIST",
                        help="comma-separated, any of: " + ", ".join(f"{f} ({name})" for f, name
                                                                    in _REPORT_FORMATS.items())
                        + " (default: all)")
    report.add_argument("--force", action="store_true", help="overwrite report files that already exist "
                                                             "(default: refuse and write nothing)")

    gate = sub.add_parser("gate", help="re-evaluate the gates of a config on existing results (no model runs)")
    gate.add_argument("results", help="results.json of a run")
    gate.add_argument("--config", help="audit TOML whose [gates] to apply (default: the gates recorded in the run, "
                                       "those of the config it ran with)")

    diff = sub.add_parser("diff", help="metrics that moved beyond their confidence intervals between two runs")
    diff.add_argument("old", help="results.json of the earlier run")
    diff.add_argument("new", help="results.json of the later run")
    diff.add_argument("--all", action="store_true", dest="all_rows",
                      help="list every metric (default: only those that moved beyond their CI, appeared, "
                           "disappeared or changed gate state)")

    retrain = sub.add_parser("retrain", help="retrain a model and write its model folder (no re-audit)")
    methods = retrain.add_subparsers(dest="method", required=True, parser_class=_Parser)
    dp = methods.add_parser("dp", help="DP fine-tuning from the config's [privacy] table, with its non-private "
                                       "baseline and membership-inference attacks")
    dp.add_argument("config", help="audit TOML file with a [privacy] table")
    dp.add_argument("--out", default="out", help="parent folder of the run folder (default: out)")
    dp.add_argument("--seed", type=int, help="override [run] seed")
    dp.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override [run] device")
    dp.add_argument("--offline", action="store_true", help="never touch the network (also HF_HUB_OFFLINE=1)")
    dp.add_argument("--quiet", action="store_true", help="no progress output")

    federated = sub.add_parser("federated", help="federated retraining across processes or machines (Flower)")
    roles = federated.add_subparsers(dest="role", required=True, parser_class=_Parser)
    serve = roles.add_parser("serve", help="start a SuperLink (TLS with raikit's certificates), run the config's "
                                           "audit with its [federated] section on the SuperNodes that join")
    serve.add_argument("config", help="audit TOML file with a [federated] table")
    serve.add_argument("--host", default="127.0.0.1", help="address the SuperLink listens on (default: 127.0.0.1; "
                                                           "0.0.0.0 for SuperNodes on other machines)")
    serve.add_argument("--port", type=int, default=9093, help="SuperLink port (default: 9093)")
    serve.add_argument("--certs", metavar="DIR", help="folder of ca.pem/server.pem/server.key (created when "
                                                      "missing; default: <out>/federation)")
    serve.add_argument("--san", action="append", default=[], metavar="NAME",
                       help="host name or IP the SuperNodes use to reach this machine, added to the SuperLink "
                            "certificate (repeatable; with --host 0.0.0.0 this machine's own name is added too)")
    serve.add_argument("--insecure", action="store_true", help="no TLS (recorded in the results and report)")
    serve.add_argument("--supernode-keys", metavar="DIR",
                       help="folder of the SuperNodes' public keys (*.pub) to register (default: <certs>/supernodes; "
                            "a key pair per client is generated there when it has none)")
    serve.add_argument("--authorize", action="append", default=[], metavar="PUBKEY",
                       help="another SuperNode public key (OpenSSH ECDSA .pub) to register (repeatable)")
    serve.add_argument("--no-supernode-auth", action="store_true", help="let any SuperNode that trusts the CA join "
                                                                         "(recorded in the results)")
    serve.add_argument("--out", default="out", metavar="DIR", help="parent folder of the run folder (default: out)")
    serve.add_argument("--seed", type=int, help="override [run] seed")
    serve.add_argument("--offline", action="store_true", help="never touch the network (also HF_HUB_OFFLINE=1)")
    serve.add_argument("--quiet", action="store_true", help="no progress output")
    join = roles.add_parser("join", help="start a SuperNode holding one partition of the config's [federated] data")
    join.add_argument("config_arg", nargs="?", metavar="config",
                      help="the audit TOML the SuperLink runs (or --config)")
    join.add_argument("--config", help="the same, as an option")
    join.add_argument("--partition", type=int, required=True, metavar="N",
                      help="this SuperNode's partition (0-based, below the config's [federated] clients)")
    join.add_argument("--superlink", default="127.0.0.1:9093", metavar="HOST:PORT",
                      help="SuperLink address (default: 127.0.0.1:9093; serve prints the one to use)")
    join.add_argument("--root-certificates", metavar="CA_PEM",
                      help="the SuperLink's CA certificate (ca.pem from serve)")
    join.add_argument("--insecure", action="store_true", help="no TLS")
    join.add_argument("--auth-key", metavar="KEY", help="this SuperNode's private key (supernode-N from serve's supernodes "
                                         "folder, or your own whose .pub serve registered with --authorize)")
    join.add_argument("--log", metavar="FILE", help="where Flower's SuperNode log goes (default: "
                                                    "supernode-<N>.log in the current folder)")
    join.add_argument("--seed", type=int, help="override [run] seed (as given to serve)")
    join.add_argument("--offline", action="store_true", help="never touch the network (also HF_HUB_OFFLINE=1)")

    sub.add_parser("models", help="list the built-in model aliases, whether each is ready, and its size")

    from raikit.audits.data_cli import add_parser as add_data_parser

    add_data_parser(sub, _Parser)

    probes = sub.add_parser("probes", help="list the configurable sections, or show one with its options")
    probes.add_argument("name", nargs="?", help="a section name (e.g. fill_mask, explain) to show as a TOML table")
    probes.add_argument("--markdown", action="store_true",
                        help="print every section's options as Markdown (the text of docs/options.md)")
    return parser


def _add_scan_parser(sub: Any) -> None:
    scan = sub.add_parser("scan", help="audit models in one command: every section that applies, sized to a budget")
    scan.add_argument("models", nargs="+", metavar="MODEL", help="hub id, local folder or builtin:<alias> (several: "
                                                                  "audited on the same items, side by side)")
    scan.add_argument("--data", metavar="CSV", help="your labelled texts: per-group metrics, calibration and "
                                                    "explanations of each classifier on them")
    scan.add_argument("--text-column", default="text", help="column of the texts in --data (default: text)")
    scan.add_argument("--label-column", default="label", help="column of the true labels in --data (default: label)")
    scan.add_argument("--group-column", default="group", help="column of the groups in --data (default: group)")
    scan.add_argument("--positive-label", metavar="CLASS", help="the classifier class that is positive (default: "
                                                                "read from the class names or the model's predictions)")
    scan.add_argument("--budget", default="10m", help="time the whole scan may take: 300s, 5m, 1h (default: 10m)")
    scan.add_argument("--out", default="out", help="parent folder of the run folder (default: out)")
    scan.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where models run")
    scan.add_argument("--seed", type=int, default=0, help="seed of every subsample (default: 0)")
    scan.add_argument("--offline", action="store_true", help="never touch the network (also HF_HUB_OFFLINE=1)")
    scan.add_argument("--write-config", metavar="TOML", help="write the audit config the scan ran (every option, "
                                                             "commented): the start of a hand-tuned audit")
    scan.add_argument("--write-gates", metavar="TOML", help="write [gates] at the current 95%% CI bounds "
                                                            "(no worse than this release)")
    scan.add_argument("--write-pytest", metavar="PY", help="write a test file the raikit pytest plugin runs "
                                                           "against those gates")
    scan.add_argument("--quiet", action="store_true", help="no progress output")


def _cmd_scan(args: argparse.Namespace) -> int:
    from raikit.audits.scan import ScanOptions, parse_budget, scan

    budget = parse_budget(args.budget)
    result = scan(ScanOptions(
        models=tuple(args.models), data=args.data, text_column=args.text_column, label_column=args.label_column,
        group_column=args.group_column, positive_label=args.positive_label, budget_s=budget, out_dir=args.out,
        device=args.device, seed=args.seed, write_config=args.write_config, write_gates=args.write_gates,
        write_pytest=args.write_pytest, progress=not args.quiet))
    outcome = result.outcome
    run = outcome.results["run"]
    print(f"results: {for_terminal(outcome.out_dir / 'results.json')}")
    for path in outcome.files[1:]:
        print(f"report:  {for_terminal(path)}")
    for path in result.written:
        print(f"wrote:   {for_terminal(path)}")
    for item in run["scan"]["sizes"]:
        size = "whole" if item["size"] is None else (f"{item['size']} test(s)" if item["size_option"] == "tests"
                                                     else f"max_items = {item['size']}")
        print(f"ran:     {for_terminal(item['section'])} on {for_terminal(', '.join(item['models']))} ({size})")
    for skipped in run.get("skipped_sections", []):
        print(f"skipped: {for_terminal(skipped['section'])} (data not installed: "
              f"{for_terminal(', '.join(skipped['data_sets']))}); fetch with `{for_terminal(skipped['command'])}`")
    for item in run["scan"]["not_run"]:
        print(f"not run: {for_terminal(item['reason'])}")
    print(f"time:    {result.seconds:.0f} s of a {run['scan']['budget_seconds']:.0f} s budget")
    return outcome.exit_code


def _cmd_audit(args: argparse.Namespace) -> int:
    from raikit.audits.runner import default_config_text, run_audit

    if args.print_default:
        print(default_config_text(), end="")
        return 0
    if args.config is not None and not Path(args.config).is_file():
        raise RaikitInputError("config file not found", where=args.config)
    outcome = run_audit(args.config, out_dir=args.out, seed=args.seed, device=args.device,
                        offline=True if args.offline else None, resume=args.resume, progress=not args.quiet)
    gates = outcome.results.get("gates", [])
    failed = [g for g in gates if not g["passed"]]
    print(f"results: {for_terminal(outcome.out_dir / 'results.json')}")
    for path in outcome.files[1:]:
        print(f"report:  {for_terminal(path)}")
    print(f"gates:   {len(gates) - len(failed)} passed, {len(failed)} failed")
    for g in failed:
        print(f"  FAILED {for_terminal(g['message'])}")
    for skipped in outcome.results["run"].get("skipped_sections", []):
        print(f"skipped: {for_terminal(skipped['section'])} (data not installed: "
              f"{for_terminal(', '.join(skipped['data_sets']))}); fetch with `{for_terminal(skipped['command'])}`")
    return outcome.exit_code


def _cmd_retrain(args: argparse.Namespace) -> int:
    from raikit.audits.runner import run_audit

    if not Path(args.config).is_file():
        raise RaikitInputError("config file not found", where=args.config)
    capability = {"dp": "privacy"}[args.method]
    outcome = run_audit(args.config, out_dir=args.out, seed=args.seed, device=args.device,
                        offline=True if args.offline else None, progress=not args.quiet, only=(capability,),
                        reaudit=False)
    print(f"results: {for_terminal(outcome.out_dir / 'results.json')}")
    for key, entry in outcome.results["sections"].items():
        for name, saved in (entry.get("retrained_models") or {}).items():
            print(f"model:   {for_terminal(outcome.out_dir / saved['path'])}  ({key}.{name})")
    metrics = outcome.results["metrics"]
    if "privacy.dp.epsilon" in metrics:
        eps, delta = metrics["privacy.dp.epsilon"]["value"], metrics["privacy.dp.delta"]["value"]
        print(f"privacy: epsilon {eps:.3g} at delta {delta:.1g}; accuracy "
              f"{metrics['privacy.dp.accuracy']['value']:.3f} (DP)"
              + (f", {metrics['privacy.baseline.accuracy']['value']:.3f} (baseline)"
                 if "privacy.baseline.accuracy" in metrics else ""))
    return outcome.exit_code


def _cmd_federated(args: argparse.Namespace) -> int:
    from raikit.audits.federated_cli import join, serve

    return serve(args) if args.role == "serve" else join(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from raikit.reports import load_results, report_paths, write_reports

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        raise RaikitInputError(f"no format given; known: {', '.join(_REPORT_FORMATS)}", where="--formats")
    results = load_results(args.results)
    out_dir = Path(args.out).parent if args.out else Path(args.results).parent
    html_path = Path(args.out) if args.out else None
    existing = [p for p in report_paths(out_dir, formats=formats, html_path=html_path).values() if p.exists()]
    if existing and not args.force:
        more = f" (and {len(existing) - 1} more report file(s))" if len(existing) > 1 else ""
        raise RaikitInputError(f"already exists{more}; pass --force to overwrite", where=str(existing[0]))
    files = write_reports(results, out_dir, formats=formats, html_path=html_path, overwrite=args.force)
    for path in files:
        print(f"report: {for_terminal(path)}")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    from raikit.audits.gates import evaluate_gates, gates_from_config, recorded_gates
    from raikit.reports import load_results

    results = load_results(args.results)
    if args.config is None:
        gates = recorded_gates(results, where=args.results)
        print(f"gates recorded in the run ({len(gates)}; --config FILE applies another config's [gates])")
    else:
        gates = gates_from_config(args.config)
    outcomes = evaluate_gates(gates, results.get("metrics", {}))
    for outcome in outcomes:
        print(f"{'PASS' if outcome.passed else 'FAIL'} {for_terminal(outcome.message)}")
    failed = sum(not o.passed for o in outcomes)
    print(f"gates: {len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from raikit.reports import diff_results, load_results

    diff = diff_results(load_results(args.old), load_results(args.new))
    print("\n".join(for_terminal(line) for line in diff.to_text(all_rows=args.all_rows).splitlines()))
    return 1 if diff.regressions else 0


def _cmd_data(args: argparse.Namespace) -> int:
    from raikit.audits.data_cli import run

    return run(args)


def _cmd_models(args: argparse.Namespace) -> int:
    from raikit.audits.builtin import builtin_status

    rows = builtin_status()
    width = max(len(r["alias"]) for r in rows)
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:7.1f} MB" if r["ready"] else "        -"
        state = "ready    " if r["ready"] else "not ready"
        print(f"{r['alias']:<{width}}  {r['kind']:<10}  {state}  {size}  {r['description']}")
        if r.get("install"):
            print(f"{'':<{width}}  not installed: {r['install']}")
    if any(r.get("install") for r in rows):
        print("With internet, any HuggingFace hub id works in place of a built-in model "
              '([models.<key>] id = "<org>/<name>").')
    return 0


def _cmd_probes(args: argparse.Namespace) -> int:
    from raikit.audits.runner import available_sections

    sections = available_sections()
    if args.markdown:
        print(options_markdown(sections), end="")
        return 0
    if not args.name:
        width = max(len(table) for table, _ in sections.values()) + 2
        for table, section in sections.values():
            print(f"{'[' + table + ']':<{width}}  {', '.join(section.model_kinds):<42}  {section.description}")
        print("\nraikit probes <name> shows a section's options: what each does, its type and its default.")
        return 0
    if args.name not in sections:
        close = difflib.get_close_matches(args.name, list(sections), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RaikitInputError(f"no section {args.name!r}{hint}; known: {', '.join(sections)}", where="raikit probes")
    table, section = sections[args.name]
    print(f"# {section.description}")
    print(f"# models: {', '.join(section.model_kinds)}")
    if section.metrics:
        print(f"# metrics: {', '.join(f'{table}.{m}' for m in section.metrics)}")
    if section.citation:
        print(f"# {section.citation}")
    print(f"[{table}]")
    print("# model: the key of a [models.<key>] table; omit it when the config has one model of a kind this section "
          "takes;")
    print('# a list (model = ["a", "b"]) runs the table on each model, metrics named '
          f'{table}.<model key>.<metric>')
    print('model = "<key of a [models.<key>] table>"')
    from raikit.audits.config import option_docs, toml_value

    for doc in option_docs(section.options):
        about = f"{doc.name} ({doc.type})" + (f": {_option_text(doc)}" if doc.description or doc.choices else "")
        print()
        print("\n".join(textwrap.wrap(about, width=110, initial_indent="# ", subsequent_indent="#   ", break_on_hyphens=False)))
        print(f"# {doc.name} = ...   (not set by default)" if doc.default is None else
              f"{doc.name} = {toml_value(doc.default)}")
    return 0


def _option_text(doc: Any) -> str:
    """One option's description as ``raikit probes`` and docs/options.md show it, allowed values last."""
    from raikit.audits.config import toml_value

    text = doc.description.replace("``", "`")
    if doc.choices:
        text += f" Allowed: {', '.join(toml_value(c) for c in doc.choices)}."
    return text


def options_markdown(sections: Any) -> str:
    """docs/options.md: every configurable section's options, each with its own description (from the docstrings).

    Parameters
    ----------
    sections : mapping
        :func:`raikit.audits.runner.available_sections`.
    """
    from raikit.audits.config import option_docs, toml_value

    lines = ["# Options of every section", "",
             "Generated from the options classes' docstrings by `raikit probes --markdown` (a test checks that this",
             "file is its output); `raikit probes <name>` shows the same text as a TOML table.", ""]
    for name, (table, section) in sections.items():
        lines += [f"## `[{table}]` ({name})", "", section.description, ""]
        for doc in option_docs(section.options):
            default = "not set" if doc.default is None else f"`{toml_value(doc.default)}`"
            lines.append(f"- `{doc.name}` ({doc.type}; default {default}): {_option_text(doc)}")
        lines.append("")
    return "\n".join(lines)


_COMMANDS = {"scan": _cmd_scan, "audit": _cmd_audit, "retrain": _cmd_retrain, "federated": _cmd_federated, "report": _cmd_report, "gate": _cmd_gate, "diff": _cmd_diff, "models": _cmd_models,
             "probes": _cmd_probes, "data": _cmd_data}


def _join_config(args: argparse.Namespace) -> None:
    """``raikit federated join``: the config as an argument (like ``serve``) or as ``--config``, not two different."""
    given = [c for c in (args.config_arg, args.config) if c]
    if not given:
        raise RaikitInputError("the audit TOML the SuperLink runs is needed (as for serve)",
                               where="raikit federated join")
    if len(set(given)) > 1:
        raise RaikitInputError(f"two different configs, {given[0]!r} and --config {given[1]!r}; give one",
                               where="raikit federated join")
    args.config = given[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raikit`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    with _clean_errors(args.debug):
        if args.command == "federated" and args.role == "join":
            _join_config(args)
        if args.command in ("audit", "retrain", "federated", "scan") and _wants_offline(args):
            set_offline()  # before anything imports huggingface_hub, which reads the switches once
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
        try:
            if not args.debug:
                _quiet_libraries()
            with warnings.catch_warnings():
                warnings.simplefilter("default", RenamedKeyWarning)  # shown once each, never an exception
                warnings.showwarning = _one_line_warnings(warnings.showwarning)
                return _COMMANDS[args.command](args)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return 2  # pragma: no cover  (the context manager exits)


def _one_line_warnings(show: Any) -> Any:
    """``warnings.showwarning`` that prints raikit's own warnings as ``raikit: warning: ...`` (one line)."""
    def showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: Any = None, line: str | None = None) -> None:
        if issubclass(category, RenamedKeyWarning):
            print(f"raikit: warning: {for_terminal(str(message))}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _wants_offline(args: argparse.Namespace) -> bool:
    """``--offline``, ``HF_HUB_OFFLINE=1`` or ``[run] offline = true`` in the config (read here, cheaply)."""
    if args.offline or offline_from_env():
        return True
    if not getattr(args, "config", None):
        return False
    import tomllib

    try:
        run = tomllib.loads(Path(args.config).read_text(encoding="utf-8")).get("run")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # reported properly by the config check
    return isinstance(run, dict) and run.get("offline") is True


def _quiet_libraries() -> None:
    """Hide third-party progress bars and advice on loading; raikit shows its own progress."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
