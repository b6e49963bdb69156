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
