"""Escaping for every output format, in one place: control characters, terminal, Markdown, XML.

Text in a report can come from anyone: a config file, a data file, a model's output. Before it reaches
an output it goes through one of these functions:

- :func:`clean`: every format. Control characters (C0 but tab and newline, DEL, C1), bidirectional
  overrides and isolates (U+202A-U+202E, U+2066-U+2069), other invisible format characters, lone
  surrogates and the non-characters U+FFFE/U+FFFF become U+FFFD, so no escape sequence reaches a
  terminal, no NUL or ESC makes XML unparseable and no right-to-left override reorders a report line.
- :func:`clean_tree`: :func:`clean` on every string (and key) of a JSON-like value.
- :func:`for_terminal`: one line for stderr/stdout.
- :func:`for_markdown` and :func:`md_code`: text and code spans in Markdown (GitHub-flavoured, tables
  included): no link, image, HTML tag or emphasis can come from the text.
- :func:`for_xml`: text for XML attributes and elements (``xml.etree`` then escapes ``<&>"``).

HTML goes through Jinja2 autoescaping after :func:`clean_tree` (see ``raikit.reports``).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["REPLACEMENT", "clean", "clean_tree", "clean_input", "has_control", "for_terminal", "for_markdown",
           "md_code", "for_xml"]

REPLACEMENT = "\ufffd"

# Unicode categories Cc (control), Cf (format: bidi overrides, zero-width, BOM...), Cs (surrogates)
# and Cn (unassigned, which includes U+FFFE/U+FFFF). Tab and newline are kept.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn"})
_KEEP = frozenset("\t\n")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#!|~&])")
_MD_BULLET = re.compile(r"^(\s*)([-+])(?=\s|$)")  # "- x" would start a list item ("*" and "#" are escaped anyway)
_MD_ORDERED = re.compile(r"^(\s*\d{1,9})([.)])(?=\s|$)")  # "1. x" would start an ordered list


def _bad(ch: str) -> bool:
    return ch not in _KEEP and unicodedata.category(ch) in _BAD_CATEGORIES


def has_control(text: str) -> bool:
    """Whether :func:`clean` would change ``text``."""
    return any(_bad(ch) for ch in text) or "\r" in text


def clean(text: Any) -> str:
    """``str(text)`` with every control, format and non-character replaced by U+FFFD (``\\r\\n`` -> ``\\n``).

    Parameters
    ----------
    text : object
        Anything; non-strings are converted with ``str``.

    Returns
    -------
    str
        Text that holds no character a terminal, an XML parser or a bidi renderer would act on.
    """
    s = str(text).replace("\r\n", "\n")
    if s.isascii() and s.isprintable():
        return s
    return "".join(REPLACEMENT if _bad(ch) else ch for ch in s)


def clean_input(text: Any) -> str:
    """A text about to go to a model or an explainer: control and format characters become spaces.

    Spaces rather than U+FFFD, so that word segmentation (raikit's, LIME's, SHAP's) sees the same words
    either side of a NUL or an escape sequence.
    """
    s = str(text)
    if s.isascii() and s.isprintable():
        return s
    return "".join(" " if _bad(ch) or ch == "\r" else ch for ch in s)


def clean_tree(value: Any) -> Any:
    """:func:`clean` applied to every string and mapping key in a JSON-like value (numbers untouched)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {clean(k) if isinstance(k, str) else k: clean_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_tree(v) for v in value]
    return value


def for_terminal(text: Any) -> str:
    """One line safe to print: cleaned, with newlines and tabs as spaces."""
    return clean(text).replace("\n", " ").replace("\t", " ")


def for_markdown(text: Any) -> str:
    """Plain text inside a Markdown paragraph, list item or table cell.

    Every ASCII punctuation character Markdown can give meaning to is backslash-escaped (so ``[x](y)``,
    ``![x](y)``, ``<tag>``, ``*em*``, `` `code` `` and ``|`` stay literal) and newlines become spaces (a
    value cannot start a new block or table row). ``://`` is written ``:\\/\\/``, so no bare URL is
    auto-linked either.
    """
    s = clean(text).replace("\n", " ").replace("\t", " ")
    s = _MD_SPECIAL.sub(r"\\\1", s).replace("://", ":\\/\\/")
    return _MD_ORDERED.sub(r"\1\\\2", _MD_BULLET.sub(r"\1\\\2", s, count=1), count=1)


def md_code(text: Any, *, table: bool = True) -> str:
    """A Markdown code span holding ``text`` literally, whatever backticks it contains.

    The fence is one backtick longer than the longest run inside the text. In a table cell
    (``table=True``) a ``|`` is written ``\\|``, which GitHub-flavoured tables read as a literal pipe
    even inside code spans.
    """
    s = clean(text).replace("\n", " ").replace("\t", " ")
    if table:
        s = s.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def for_xml(text: Any) -> str:
    """Text for an XML attribute or element: cleaned (XML 1.0 forbids most control characters).

    ``xml.etree`` escapes ``<``, ``&``, ``>`` and quotes when it writes; in an attribute it would keep a
    newline only as a space, so newlines stay (elements) and tabs stay.
    """
    return clean(text)
