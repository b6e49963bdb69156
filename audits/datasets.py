"""Benchmark data sets: declared once, fetched and verified, found where the user keeps them.

Every data set raikit reads from ``{data_dir}`` is declared in ``data/datasets.toml`` (shipped with the
package): a raw-file URL at a fixed upstream commit, the SHA-256 and size of every file, licence and
citation. :func:`fetch` downloads (or, with ``source_dir``, copies from a local mirror) every file of a
set into a hidden staging folder beside the target, checks each hash, and only when all match moves the
files into ``<root>/<set>/``: an interrupted or corrupted fetch never leaves a file that looks valid.

Where ``{data_dir}/<set>/...`` is read from (:func:`data_root`): ``[run] data_dir`` (the caller passes it),
else ``$RAIKIT_DATA``, else the user data directory when it holds the set, else a checkout's
``../shared/data`` (the project's reference mirror), else the user data directory (where
``raikit data fetch`` puts it, so "not found" messages name that place).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
import json
import os
import re
import shlex
import shutil
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from raikit.audits.errors import RaikitInputError
from raikit.audits.io import file_sha256

__all__ = ["DataFile", "DataSet", "catalog", "get_set", "user_data_root", "checkout_roots", "holds", "data_root",
           "located", "expand_data_dir", "set_of", "fetch_command", "fetch", "verify", "FileCheck", "ENV", "is_url"]

ENV = "RAIKIT_DATA"
_SCHEMA = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_.+-]{0,127})?")
#: The most bytes read for a file declared by its upstream git blob id alone (no size known in advance).
UNSIZED_LIMIT = 1 << 30
_SET_REF = re.compile(r"\{data_dir\}[/\\]+([^/\\]+)")
_CHUNK = 1 << 16
_MANIFEST = ".raikit-source.json"


@dataclass(frozen=True)
class DataFile:
    """One file of a data set.

    Attributes
    ----------
    path : str
        File name inside the set's folder, or ``<folder>/<name>`` one level down (as upstream lays it out).
    url : str
        Upstream raw-file URL at a fixed commit.
    sha256 : str
        Expected SHA-256 (lower-case hex); empty for a file pinned by ``git_blob`` alone.
    size : int or None
        Expected size in bytes; None for a file pinned by ``git_blob`` alone.
    git_blob : str
        The file's git object id in the upstream repository at the set's commit (SHA-1 of
        ``blob <size>\0<content>``): how a file is pinned when the reference mirror does not hold it, so its
        SHA-256 could not be computed here. Checked after download, like the SHA-256.
    optional : bool
        The set is usable without it (a BBQ category the reference mirror lacks): a copy from a local mirror
        that does not have it skips it and says so, and :func:`holds` does not require it.
    """

    path: str
    url: str
    sha256: str
    size: int | None
    git_blob: str = ""
    optional: bool = False


@dataclass(frozen=True)
class DataSet:
    """A declared data set (one ``[sets.<name>]`` table of ``datasets.toml``).

    Attributes
    ----------
    name : str
        Its folder under the data root, and its name on the command line.
    title, description : str
        What it is, for ``raikit data list``.
    licence, licence_url : str
        The upstream licence.
    citation : str
        The paper to cite.
    repository, commit : str
        The upstream GitHub repository and the commit every URL is pinned to.
    requires_acceptance : bool
        Fetched only after the user accepts the licence (``--accept-license <name>``).
    used_by : tuple of str
        The sections that read it.
    files : tuple of DataFile
        Every file, with its hash and size.
    note : str
        Anything else worth knowing about the source.
    """

    name: str
    title: str
    description: str
    licence: str
    licence_url: str
    citation: str
    repository: str
    commit: str
    requires_acceptance: bool
    used_by: tuple[str, ...]
    files: tuple[DataFile, ...]
    note: str = ""

    @property
    def size(self) -> int:
        """Total size in bytes of the files whose size is declared."""
        return sum(f.size or 0 for f in self.files)


def _parse_catalog(raw: Mapping[str, Any], where: str) -> dict[str, DataSet]:
    """Validate the declaration file; a broken one is a bug in raikit, reported with file, table and key."""
    if raw.get("schema") != _SCHEMA:
        raise RaikitInputError(f"key 'schema': expected {_SCHEMA}, got {raw.get('schema')!r}", where=where)
    sets: dict[str, DataSet] = {}
    for name, table in (raw.get("sets") or {}).items():
        at = f"{where}: [sets.{name}]"
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            raise RaikitInputError("set names use a-z, 0-9 and _", where=at)
        if not re.fullmatch(r"[0-9a-f]{40}", str(table.get("commit", ""))):
            raise RaikitInputError(f"key 'commit': not a 40-digit commit hash: {table.get('commit')!r}", where=at)
        files = []
        for number, item in enumerate(table.get("files") or [], start=1):
            fat = f"{at}: files #{number}"
            path, url, sha, size = item.get("path"), item.get("url"), item.get("sha256"), item.get("size")
            blob, optional = item.get("git_blob", ""), item.get("optional", False)
            if not isinstance(path, str) or not _FILE_NAME.fullmatch(path):
                raise RaikitInputError(f"key 'path': not a plain file name (or folder/name): {path!r}", where=fat)
            if not isinstance(url, str) or not url.startswith("https://") or table["commit"] not in url:
                raise RaikitInputError(f"key 'url': not an https URL pinned to the set's commit: {url!r}", where=fat)
            if not isinstance(blob, str) or (blob and not _HEX40.fullmatch(blob)):
                raise RaikitInputError(f"key 'git_blob': not 40 lower-case hex digits: {blob!r}", where=fat)
            if not isinstance(optional, bool):
                raise RaikitInputError(f"key 'optional': not true or false: {optional!r}", where=fat)
            if sha is None and size is None and blob:
                files.append(DataFile(path=path, url=url, sha256="", size=None, git_blob=blob, optional=optional))
                continue
            if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
                raise RaikitInputError(f"key 'sha256': not 64 lower-case hex digits: {sha!r}", where=fat)
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise RaikitInputError(f"key 'size': not a byte count: {size!r}", where=fat)
            files.append(DataFile(path=path, url=url, sha256=sha, size=size, git_blob=blob, optional=optional))
        if not files:
            raise RaikitInputError("no files declared", where=at)
        if len({f.path for f in files}) != len(files):
            raise RaikitInputError("a file is declared twice", where=at)
        try:
            sets[name] = DataSet(name=name, title=str(table["title"]), description=str(table["description"]),
                                 licence=str(table["licence"]), licence_url=str(table["licence_url"]),
                                 citation=str(table["citation"]), repository=str(table["repository"]),
                                 commit=str(table["commit"]),
                                 requires_acceptance=bool(table.get("requires_acceptance", False)),
                                 used_by=tuple(table.get("used_by") or ()), files=tuple(files),
                                 note=str(table.get("note", "")))
        except KeyError as exc:
            raise RaikitInputError(f"missing key {exc.args[0]!r}", where=at) from None
    return sets


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, DataSet]:
    """Every declared data set by name, read once from the packaged ``data/datasets.toml``."""
    resource = importlib.resources.files("raikit.audits").joinpath("data/datasets.toml")
    return _parse_catalog(tomllib.loads(resource.read_text(encoding="utf-8")), where="raikit datasets.toml")


def get_set(name: str, *, where: str = "raikit data") -> DataSet:
    """The declared set ``name``; an unknown name is an input error listing the known ones."""
    sets = catalog()
    if name not in sets:
        import difflib

        close = difflib.get_close_matches(name, list(sets), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RaikitInputError(f"unknown data set {name!r}{hint}; known: {', '.join(sets)}", where=where)
    return sets[name]


def user_data_root() -> Path:
    """Where ``raikit data fetch`` puts sets: ``$RAIKIT_DATA``, else the platform's user data directory."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("raikit"))


def checkout_roots() -> tuple[Path, ...]:
    """A checkout's reference mirror: ``../shared/data`` beside the working folder or beside this checkout.

    The second applies when raikit runs from its own source tree (an editable install): the folder two
    levels above this module holds ``pyproject.toml``.
    """
    roots = [Path("../shared/data"), Path("shared/data")]
    source_root = Path(__file__).resolve().parents[1]
    if (source_root / "pyproject.toml").is_file():
        roots.append(source_root.parent / "shared" / "data")
    return tuple(dict.fromkeys(r.resolve() for r in roots if r.is_dir()))


def holds(root: Path, dataset: DataSet) -> bool:
    """Whether ``root/<set>`` has every declared file at its declared size (a cheap check; :func:`verify` hashes)."""
    folder = root / dataset.name
    try:
        return all((folder / f.path).stat().st_size == f.size or (f.size is None and (folder / f.path).is_file())
                   for f in dataset.files if not f.optional)
    except OSError:
        return False


def located(name: str) -> tuple[Path, str] | None:
    """The root that holds set ``name`` and what kind of place it is, or None when no place does.

    The kinds: ``"$RAIKIT_DATA"``, ``"user data"``, ``"checkout mirror"``.
    """
    dataset = get_set(name)
    if os.environ.get(ENV):
        root = user_data_root()
        return (root, "$RAIKIT_DATA") if (root / name).exists() else None
    root = user_data_root()
    if holds(root, dataset):
        return root, "user data"
    for mirror in checkout_roots():
        if (mirror / name).is_dir():
            return mirror, "checkout mirror"
    return None


def data_root(name: str | None = None) -> Path:
    """What ``{data_dir}`` means for set ``name`` when ``[run] data_dir`` is not set (see the module docstring).

    Without a name (or for a folder that is not a declared set): ``$RAIKIT_DATA``, else the user data
    directory when it holds any declared set, else a checkout mirror, else the user data directory.
    """
    if os.environ.get(ENV):
        return user_data_root()
    if name is not None and name in catalog():
        place = located(name)
        return place[0] if place else user_data_root()
    root = user_data_root()
    if any(holds(root, d) for d in catalog().values()):
        return root
    mirrors = checkout_roots()
    return mirrors[0] if mirrors else root


def expand_data_dir(text: str, data_dir: Path | None = None) -> str:
    """Replace ``{data_dir}`` in ``text``: by ``data_dir`` when given, else per set by :func:`data_root`."""
    if "{data_dir}" not in text:
        return text
    if data_dir is not None:
        return text.replace("{data_dir}", str(data_dir))
    text = _SET_REF.sub(lambda m: str(data_root(m.group(1)) / m.group(1)), text)
    return text.replace("{data_dir}", str(data_root()))


def set_of(text: str) -> str | None:
    """The declared set a ``{data_dir}/<set>/...`` path names, or None."""
    match = _SET_REF.search(text)
    return match.group(1) if match and match.group(1) in catalog() else None


def fetch_command(names: Iterable[str], *, target: Path | None = None) -> str:
    """The exact ``raikit data fetch`` command for these sets (licence acceptance included where needed)."""
    names = list(dict.fromkeys(names))
    parts = ["raikit", "data", "fetch", *names]
    accept = [n for n in names if n in catalog() and catalog()[n].requires_acceptance]
    for name in accept:
        parts += ["--accept-license", name]
    if target is not None:
        parts += ["--dir", _quote(str(target))]
    return " ".join(parts)


def _quote(text: str) -> str:
    return shlex.quote(text)


# -- fetching ---------------------------------------------------------------------------------------------

Opener = Callable[[str, float], BinaryIO]


def _open_url(url: str, timeout: float) -> BinaryIO:
    request = urllib.request.Request(url, headers={"User-Agent": "raikit-data-fetch"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310  (https URLs from the declaration)


def _copy_hashed(reader: BinaryIO, target: Path, limit: int) -> tuple[str, int]:
    """Stream ``reader`` into ``target``; stop reading past ``limit`` bytes (a wrong file, not a long wait)."""
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while chunk := reader.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                break
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _describe_url_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", exc)
    return (str(reason).strip().splitlines() or [type(exc).__name__])[0]


def fetch(dataset: DataSet, *, root: Path, source_dir: Path | str | None = None, accepted: Iterable[str] = (),
          timeout: float = 60.0, opener: Opener | None = None, where: str = "raikit data fetch") -> list[str]:
    """Fetch every file of ``dataset`` into ``root/<set>/``, verified, all or nothing.

    Parameters
    ----------
    dataset : DataSet
        What to fetch.
    root : Path
        The data root (``raikit data fetch --dir``; default :func:`user_data_root`).
    source_dir : Path or str, optional
        A mirror to copy from instead of the upstream URLs: a local folder (the file is looked for at
        ``source_dir/<set>/<file>``, then ``source_dir/<file>``) or an ``http(s)://`` base URL
        (``<base>/<set>/<file>``).
    accepted : iterable of str
        Sets whose licence the user accepted (``--accept-license``).
    timeout : float
        Seconds per network operation.
    opener : callable, optional
        ``opener(url, timeout) -> binary reader`` (default: urllib).
    where : str
        Prefix of error messages.

    Returns
    -------
    list of str
        The files that were written (files already present and valid are kept and not listed).

    Raises
    ------
    RaikitInputError
        Licence not accepted, source unreachable or missing a file, or a hash or size that does not match
        (one line naming the set, the file and the expected hash); nothing of this fetch is left behind.
    """
    if dataset.requires_acceptance and dataset.name not in set(accepted):
        raise RaikitInputError(f"data set {dataset.name!r} is licensed {dataset.licence} ({dataset.licence_url}); "
                               f"read the licence, then accept it with --accept-license {dataset.name}", where=where)
    folder = root / dataset.name
    todo = [f for f in dataset.files if not _valid(folder / f.path, f)]
    if source_dir is not None and not (isinstance(source_dir, str) and is_url(source_dir)):
        todo = [f for f in todo if not (f.optional and _mirror_file(Path(source_dir), dataset, f) is None)]
    if not todo:
        return []
    created_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dataset.name}-", suffix=".partial", dir=root))
    except OSError as exc:
        raise RaikitInputError(f"cannot write to the data folder ({exc.strerror or type(exc).__name__})",
                               where=f"{where}: {root}") from None
    done = False
    try:
        for item in todo:
            part = staging / item.path
            origin = _fetch_one(dataset, item, part, source_dir=source_dir, timeout=timeout,
                                opener=opener or _open_url, where=where)
            digest, size = origin
            if item.size is None:
                blob = _git_blob(part) if size <= UNSIZED_LIMIT else ""
                if blob != item.git_blob:
                    got = f"more than {UNSIZED_LIMIT} bytes" if size > UNSIZED_LIMIT else f"git blob {blob}"
                    raise RaikitInputError(f"data set {dataset.name!r}: {item.path} does not match its declaration "
                                           f"(expected git blob {item.git_blob}; got {got}); nothing was kept, "
                                           "fetch again", where=where)
            elif size != item.size or digest != item.sha256:
                got = (f"more than {item.size} bytes" if size > item.size else f"{size} bytes" if size != item.size
                       else f"sha256 {digest}")
                raise RaikitInputError(f"data set {dataset.name!r}: {item.path} does not match its declaration "
                                       f"(expected sha256 {item.sha256}, {item.size} bytes; got {got}); nothing was "
                                       "kept, fetch again", where=where)
        folder.mkdir(parents=True, exist_ok=True)
        for item in todo:
            (folder / item.path).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / item.path, folder / item.path)
        manifest = {"set": dataset.name, "repository": dataset.repository, "commit": dataset.commit,
                    "source": str(source_dir) if source_dir else "upstream URLs",
                    "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "licence": dataset.licence,
                    "licence_accepted": dataset.requires_acceptance}
        (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(staging / _MANIFEST, folder / _MANIFEST)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done and created_root:
            with contextlib.suppress(OSError):
                root.rmdir()  # only if empty: a failed first fetch leaves no folder behind
    return [item.path for item in todo]


def _fetch_one(dataset: DataSet, item: DataFile, part: Path, *, source_dir: Path | str | None, timeout: float,
               opener: Opener, where: str) -> tuple[str, int]:
    url = item.url
    if isinstance(source_dir, str) and is_url(source_dir):
        url = f"{source_dir.rstrip('/')}/{urllib.parse.quote(dataset.name)}/{urllib.parse.quote(item.path)}"
    elif source_dir is not None:
        source_dir = Path(source_dir)
        candidate = _mirror_file(source_dir, dataset, item)
        if candidate is not None:
            with open(candidate, "rb") as reader:
                return _copy_hashed(reader, part, _limit(item))
        raise RaikitInputError(f"data set {dataset.name!r}: {item.path} is not in {source_dir} (looked for "
                               f"{source_dir / dataset.name / item.path})", where=where)
    host = urllib.parse.urlsplit(url).netloc
    try:
        with opener(url, timeout) as reader:
            return _copy_hashed(reader, part, _limit(item))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RaikitInputError(f"data set {dataset.name!r}: cannot download {item.path} from {host} "
                               f"({_describe_url_error(exc)}); check the connection, or copy the files from a "
                               f"mirror with `raikit data fetch {dataset.name} --from DIR`", where=where) from None


def _limit(item: DataFile) -> int:
    return UNSIZED_LIMIT if item.size is None else item.size


def _mirror_file(source_dir: Path, dataset: DataSet, item: DataFile) -> Path | None:
    """Where a local mirror holds ``item``: ``<mirror>/<set>/<path>``, else ``<mirror>/<path>``."""
    for candidate in (source_dir / dataset.name / item.path, source_dir / item.path):
        if candidate.is_file():
            return candidate
    return None


def _git_blob(path: Path) -> str:
    """The git object id of a file's content (SHA-1 of ``blob <size>\\0`` and the bytes)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(text: str) -> bool:
    """Whether ``text`` is an ``http://`` or ``https://`` URL (a mirror given to ``--from``)."""
    return text.startswith(("http://", "https://"))


def _valid(path: Path, item: DataFile) -> bool:
    try:
        if path.stat().st_size != item.size and item.size is not None:
            return False
    except OSError:
        return False
    if item.size is None:
        return _git_blob(path) == item.git_blob
    return file_sha256(path) == item.sha256


@dataclass(frozen=True)
class FileCheck:
    """The state of one declared file in a data root: ``ok``, ``missing``, ``corrupt`` or ``absent`` (optional).

    ``expected`` and ``actual`` are SHA-256 digests, or git blob ids for a file pinned by its blob alone.
    """

    dataset: str
    path: str
    state: str
    expected: str
    actual: str | None = None


def verify(dataset: DataSet, *, root: Path) -> list[FileCheck]:
    """Hash every declared file of ``dataset`` under ``root/<set>/``."""
    checks = []
    for item in dataset.files:
        path = root / dataset.name / item.path
        expected = item.sha256 or item.git_blob
        if not path.is_file():
            checks.append(FileCheck(dataset.name, item.path, "absent" if item.optional else "missing", expected))
            continue
        actual = _git_blob(path) if item.size is None else file_sha256(path)
        checks.append(FileCheck(dataset.name, item.path, "ok" if actual == expected else "corrupt", expected, actual))
    return checks
