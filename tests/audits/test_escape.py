"""The one escaping module: each function against the hostile strings it exists for (issue 15)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from markdown_it import MarkdownIt

from raikit.audits.escape import REPLACEMENT, clean, clean_input, clean_tree, for_markdown, for_terminal, md_code


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u200b", "\u202e", "\u2066", "\ufeff",
                                  "\ufffe", "\ud800"])
def test_clean_replaces_control_format_and_non_characters(char):
    assert clean(f"a{char}b") == f"a{REPLACEMENT}b"
    assert clean_input(f"a{char}b") == "a b"


def test_clean_keeps_text_newlines_and_tabs():
    text = "Ça va?\tNo – «quoted» 🙂\nnext line"
    assert clean(text) == text and clean("a\r\nb") == "a\nb"
    assert clean_tree({"k\x1b": ["x\x00", 1.5, None]}) == {f"k{REPLACEMENT}": [f"x{REPLACEMENT}", 1.5, None]}


def test_terminal_is_one_clean_line():
    assert for_terminal("a\nb\tc\x1b[2J") == f"a b c{REPLACEMENT}[2J"


@pytest.mark.parametrize("text", ["[x](javascript:alert(1))", "![x](http://e.example/t.png)", "<img src=x>",
                                  "<b>bold</b>", "http://e.example/", "*em* _em_ `code`", "- item", "1. item",
                                  "# heading", "| a | b |", "a\\](javascript:x)", "back\\slash"])
def test_markdown_text_renders_literally(text):
    html = MarkdownIt("commonmark").enable("table").render(f"| h |\n|---|\n| {for_markdown(text)} |\n\n"
                                                             f"{for_markdown(text)}\n")
    assert "<a " not in html and "<img" not in html and "<b>" not in html and "<em>" not in html
    assert "<code>" not in html and "<h1>" not in html and "<li>" not in html
    assert html.count("<tr>") == 2  # the pipes did not add cells or rows
    shown = "".join(ET.fromstring(f"<r>{html}</r>").itertext())
    assert shown.count(text) == 2  # in the cell and in the paragraph, character for character


@pytest.mark.parametrize("text", ["plain", "a`b", "``x``", "`", "a | b"])
def test_code_span_holds_any_backticks(text):
    html = MarkdownIt("commonmark").render(md_code(text, table=False))
    code = ET.fromstring(html.strip()).find("code")
    assert code is not None and code.text == text
