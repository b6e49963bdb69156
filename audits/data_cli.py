"""``raikit data list | fetch | verify | path``: the benchmark data sets on this machine.

Exit codes: 0 done, 2 bad input (unknown set, licence not accepted, unreachable source, a file whose hash
does not match); one line per problem on stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raikit.audits import datasets
from raikit.audits.errors import RaikitInputError
from raikit.audits.escape import for_terminal

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``data`` command and its subcommands to ``sub``."""
    data = sub.add_parser("data", help="benchmark data sets: list, fetch (verified), verify, path")
    actions = data.add_subparsers(dest="action", required=True, parser_class=parser_class)
    actions.add_parser("list", help="each data set: what it is, size, licence, citation, fetched or not, where")
    fetch = actions.add_parser("fetch", help="download data sets (pinned URLs, SHA-256 checked) into the user data "
                                             "directory, or import them from a local mirror with --from")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="data sets to fetch (see `raikit data list`)")
    fetch.add_argument("--all", action="store_true", help="every data set (those needing licence acceptance only "
                                                          "when accepted)")
    fetch.add_argument("--from", dest="source", metavar="DIR", help="copy from this local folder, or an "
                       "http(s) mirror URL, (DIR/<set>/<file>) instead of the upstream URLs")
    fetch.add_argument("--dir", dest="root", metavar="DIR", help="data root to fetch into (default: $RAIKIT_DATA, "
                                                                 "else the user data directory)")
    fetch.add_argument("--accept-license", dest="accept", action="append", default=[], metavar="NAME",
                       help="accept the licence of a data set that requires it (repeatable)")
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds per network operation (default: 60)")
    verify = actions.add_parser("verify", help="hash every file of the data sets raikit would read")
    verify.add_argument("names", nargs="*", metavar="NAME", help="data sets to verify (default: all present)")
    path = actions.add_parser("path", help="print the folder raikit reads a data set from")
    path.add_argument("name", metavar="NAME")


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def _list() -> int:
    sets = datasets.catalog()
    width = max(len(n) for n in sets)
    print(f"data root: {for_terminal(datasets.user_data_root())} (fetch target; $RAIKIT_DATA overrides)")
    for name, d in sets.items():
        place = datasets.located(name)
        state = f"{place[1]}: {place[0] / name}" if place else f"not fetched: {datasets.fetch_command([name])}"
        print(f"{name:<{width}}  {d.title}: {d.description}")
        unsized = sum(f.size is None for f in d.files)
        print(f"{'':<{width}}  {len(d.files)} file(s), {_mb(d.size)}"
              + (f" plus {unsized} of unstated size" if unsized else "") + f"; licence {d.licence}"
              + ("; fetched only after --accept-license" if d.requires_acceptance else ""))
        print(f"{'':<{width}}  cite: {d.citation}")
        print(f"{'':<{width}}  source: github.com/{d.repository} @ {d.commit[:12]}"
              + (f" ({d.note})" if d.note else ""))
        print(f"{'':<{width}}  {for_terminal(state)}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    if args.all and args.names:
        raise RaikitInputError("give data set names or --all, not both", where="raikit data fetch")
    if not args.all and not args.names:
        raise RaikitInputError("name the data sets to fetch, or --all (see `raikit data list`)",
                               where="raikit data fetch")
    for name in [*args.names, *args.accept]:
        datasets.get_set(name, where="raikit data fetch")
    source: Path | str | None = None
    if args.source and datasets.is_url(args.source):
        source = args.source
    elif args.source:
        source = Path(args.source).expanduser()
        if not source.is_dir():
            raise RaikitInputError("not a folder (or an http(s):// mirror URL)",
                                   where=f"raikit data fetch --from {args.source}")
    if not args.timeout > 0:
        raise RaikitInputError(f"must be a positive number of seconds, got {args.timeout!r}",
                               where="raikit data fetch --timeout")
    root = Path(args.root).expanduser().resolve() if args.root else datasets.user_data_root()
    names = list(datasets.catalog()) if args.all else list(dict.fromkeys(args.names))
    pending = []
    for name in names:  # licences first, so a refusal fetches nothing
        dataset = datasets.get_set(name)
        if dataset.requires_acceptance and name not in args.accept:
            if not args.all:
                datasets.fetch(dataset, root=root, accepted=args.accept)  # raises the one-line licence error
            print(f"skipped {name}: licensed {dataset.licence}; fetch it with `{datasets.fetch_command([name])}` "
                  f"once you accept its licence ({dataset.licence_url})")
            continue
        pending.append(dataset)
    for dataset in pending:
        written = datasets.fetch(dataset, root=root, source_dir=source, accepted=args.accept, timeout=args.timeout)
        what = f"{len(written)} file(s) written" if written else "already present and verified"
        absent = [f.path for f in dataset.files if f.optional and not (root / dataset.name / f.path).is_file()]
        print(f"{dataset.name}: {what} in {for_terminal(root / dataset.name)}"
              + (f"; {len(absent)} optional file(s) not in the mirror ({', '.join(absent)}): fetch without --from "
                 "to download them" if absent else ""))
    return 0


def _verify(args: argparse.Namespace) -> int:
    names = args.names or list(datasets.catalog())
    bad = 0
    for name in names:
        dataset = datasets.get_set(name, where="raikit data verify")
        place = datasets.located(name)
        if place is None:
            if args.names:
                print(f"raikit: error: raikit data verify: data set {name!r} is not present; fetch it with "
                      f"`{datasets.fetch_command([name])}`", file=sys.stderr)
                bad += 1
            else:
                print(f"{name}: not fetched")
            continue
        checks = datasets.verify(dataset, root=place[0])
        wrong = [c for c in checks if c.state not in ("ok", "absent")]
        absent = [c.path for c in checks if c.state == "absent"]
        for c in wrong:
            kind = "sha256" if len(c.expected) == 64 else "git blob"
            got = "missing" if c.state == "missing" else f"{kind} {c.actual}"
            print(f"raikit: error: raikit data verify: data set {name!r}: {c.path} is {c.state} (expected {kind} "
                  f"{c.expected}, got {got}); refetch with `{datasets.fetch_command([name])}`", file=sys.stderr)
        bad += bool(wrong)
        if not wrong:
            ok = len(checks) - len(absent)
            print(f"{name}: {ok} file(s) verified in {for_terminal(place[0] / name)} ({place[1]})"
                  + (f"; {len(absent)} optional file(s) not present ({', '.join(absent)}): "
                     f"`{datasets.fetch_command([name])}` downloads them" if absent else ""))
    return 2 if bad else 0


def _path(args: argparse.Namespace) -> int:
    datasets.get_set(args.name, where="raikit data path")
    place = datasets.located(args.name)
    if place is None:
        raise RaikitInputError(f"data set {args.name!r} is not present; fetch it with "
                               f"`{datasets.fetch_command([args.name])}`", where="raikit data path")
    print(for_terminal(place[0] / args.name))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``raikit data <action>``."""
    if args.action == "list":
        return _list()
    if args.action == "fetch":
        return _fetch(args)
    if args.action == "verify":
        return _verify(args)
    return _path(args)
