"""Shared fixtures: tiny models on real and synthetic tokenizers (see tests/tiny.py)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tiny  # noqa: E402

pytest_plugins = ["pytester"]

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
SLOW_LIST = Path(__file__).with_name("slow.txt")


def _slow_lines() -> list[str]:
    """The node ids in tests/slow.txt (a test file, a test, or one parametrized case per line)."""
    lines = (raw.split("#", 1)[0].strip() for raw in SLOW_LIST.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` what tests/slow.txt names and every ``browser`` or ``integration`` test (make test-fast)."""
    lines = _slow_lines()
    used: set[str] = set()
    for item in items:
        hits = [line for line in lines if item.nodeid == line or item.nodeid.startswith((line + "::", line + "["))]
        used.update(hits)
        if hits or item.get_closest_marker("browser") or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.slow)
    # a line naming nothing in a file collected whole is stale (a renamed or removed test)
    here = config.invocation_params.dir
    partial = {(here / arg.split("::", 1)[0]).resolve() for arg in config.args if "::" in arg}
    whole = {item.path.resolve() for item in items} - partial
    stale = [line for line in lines
             if line not in used and (config.rootpath / line.split("::", 1)[0]).resolve() in whole]
    if stale:
        raise pytest.UsageError(f"{SLOW_LIST}: no collected test matches {', '.join(stale)}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data beside the checkout (../shared/data)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_tok():
    return tiny.minilm_tokenizer()


@pytest.fixture(scope="session")
def random_mlm(minilm_tok):
    """Random-weight BERT masked LM on the real MiniLM vocab, wrapped in its adapter (CPU)."""
    from raikit.audits import wrap_model

    return wrap_model(tiny.tiny_mlm(minilm_tok), minilm_tok, name="tiny-mlm", device="cpu", progress=False)


@pytest.fixture(scope="session")
def random_causal():
    """Random-weight GPT-2 causal LM on a byte-level BPE tokenizer, wrapped in its adapter (CPU)."""
    from raikit.audits import wrap_model

    corpus = ["The nurse said that she was tired.", "The doctor said that he was busy.",
              "People from every country live here, and they work hard."] * 20
    tok = tiny.bpe_tokenizer(corpus)
    return wrap_model(tiny.tiny_causal(tok), tok, name="tiny-causal", device="cpu", progress=False)


@pytest.fixture(scope="session")
def random_classifier(minilm_tok):
    """Random-weight BERT classifier (negative/positive) on the MiniLM vocab, wrapped (CPU)."""
    from raikit.audits import wrap_model

    return wrap_model(tiny.tiny_classifier(minilm_tok), minilm_tok, name="tiny-clf", device="cpu", progress=False)


@pytest.fixture(scope="session")
def random_encoder(minilm_tok):
    from raikit.audits import wrap_model

    return wrap_model(tiny.tiny_encoder(minilm_tok), minilm_tok, name="tiny-enc", device="cpu", progress=False)
