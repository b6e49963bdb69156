"""Atomic file writes (a temporary file in the same folder, then a rename), safe names and file hashes."""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from raikit.audits.escape import clean, clean_tree

__all__ = ["file_sha256", "write_text_atomic", "write_json_atomic", "write_csv_atomic", "SAFE_NAME", "is_safe_name", "confined"]

#: Names that may become part of a file name: table names, section keys, per-item table names.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (a model's weights never sit in memory at once)."""
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while block := reader.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_safe_name(name: object) -> bool:
    """Whether ``name`` is 1-64 of ``A-Z a-z 0-9 _ -`` (not starting with ``-``): safe in any file name."""
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None


def confined(root: str | os.PathLike[str], name: str) -> Path:
    """``root / name``, refusing any result that resolves outside ``root`` (``..``, absolute, symlinks).

    Raises
    ------
    PermissionError
        When the path would leave ``root``; nothing is written.
    """
    base = Path(root).resolve()
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise PermissionError(f"refusing to write {name!r}: it resolves outside the run folder {base}")
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN refused: clean values first).

    Control and bidi characters in strings become U+FFFD (:func:`raikit.audits.escape.clean_tree`).
    """
    text = json.dumps(clean_tree(data), indent=2, allow_nan=False, ensure_ascii=False)
    return write_text_atomic(path, text + "\n")


def write_csv_atomic(path: str | os.PathLike[str], frame: Any) -> Path:
    """Write a pandas DataFrame as CSV (no index); control characters in text cells become U+FFFD."""
    frame = frame.rename(columns=lambda c: clean(c) if isinstance(c, str) else c)
    text_columns = [c for c in frame.columns if getattr(frame[c].dtype, "kind", "O") not in "biufcmM"]
    if text_columns:
        frame = frame.copy()
        for column in text_columns:
            frame[column] = frame[column].map(lambda v: clean(v) if isinstance(v, str) else v)
    return write_text_atomic(path, frame.to_csv(index=False))
