"""Word segmentation and subword merging on WordPiece, byte-level BPE and SentencePiece tokenizers."""
from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import tiny

from raikit.audits import wrap_model
from raikit.explain import ExplainSettings, explain, merge_to_words, token_word_matrix, word_spans

TEXTS = [
    "The nurse said: it's 3.5 stars 👍🏽, café naïve!",
    "Unbelievable... Müller paid €12,50 (twice)?!",
    "  leading and trailing spaces \t and\ttabs  ",
    "東京 is big; Zürich isn't. 😀😀",
    unicodedata.normalize("NFD", "décomposé résumé") + " ok",
]
CORPUS = [
    "the nurse said that it was fine and the stars were out",
    "cafe naive muller paid twelve euros twice",
    "tokyo is big and zurich is not big",
    "unbelievable leading trailing spaces tabs",
] * 10


def _words(text):
    return [text[s:e] for s, e in word_spans(text)]


def test_segmentation_rule():
    assert _words("don't stop!") == ["don", "'", "t", "stop", "!"]
    assert _words("3.5 👍🏽 café") == ["3", ".", "5", "👍🏽", "café"]
    assert _words("naïve 東京") == ["naïve", "東京"]
    decomposed = unicodedata.normalize("NFD", "café")
    assert _words(decomposed) == [decomposed]          # the combining accent stays in the word
    assert _words(" \t\n") == []


@pytest.mark.parametrize("text", TEXTS)
def test_spans_rebuild_the_text(text):
    spans = word_spans(text)
    assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:]))
    assert "".join(_words(text)) == "".join(text.split())   # every non-space character, in order
    assert all(not text[s:e].isspace() and text[s:e].strip() == text[s:e] for s, e in spans)


def _tokenizers(minilm_tok):
    return {"wordpiece": minilm_tok, "bpe": tiny.bpe_tokenizer(CORPUS + TEXTS),
            "sentencepiece": tiny.sentencepiece_tokenizer(CORPUS + TEXTS)}


def test_tokens_map_to_the_words_they_cover(minilm_tok):
    for family, tok in _tokenizers(minilm_tok).items():
        for text in TEXTS:
            enc = tok(text, return_offsets_mapping=True)
            offsets = [tuple(o) for o in enc["offset_mapping"]]
            spans = word_spans(text)
            m = token_word_matrix(offsets, spans)
            for t, (a, b) in enumerate(offsets):
                piece = text[a:b]
                if not piece.strip():
                    assert m[t].sum() == 0, (family, text, piece)
                    continue
                assert m[t].sum() == pytest.approx(1.0), (family, text, piece)
                inside = [w for w, (s, e) in enumerate(spans) if s <= a and b <= e]
                if inside:   # a subword piece lies inside one word: all of it goes there
                    assert m[t, inside[0]] == pytest.approx(1.0), (family, text, piece)
            covered = m.sum(axis=0) > 0
            assert covered.all(), (family, text, [text[s:e] for (s, e), c in zip(spans, covered) if not c])
            # merging conserves the total of the tokens that carry text
            values = np.arange(1, len(offsets) + 1, dtype=float)
            carrying = np.array([bool(text[a:b].strip()) for a, b in offsets])
            assert merge_to_words(values, offsets, spans).sum() == pytest.approx(values[carrying].sum())


def test_subword_pieces_are_merged(minilm_tok):
    text = "Unbelievable tokenization!"
    pieces = minilm_tok.tokenize(text)
    assert any(p.startswith("##") for p in pieces)          # really split into WordPiece pieces
    enc = minilm_tok(text, return_offsets_mapping=True)
    values = np.ones(len(enc["input_ids"]))
    merged = merge_to_words(values, [tuple(o) for o in enc["offset_mapping"]], word_spans(text))
    n_first = len(minilm_tok.tokenize("Unbelievable"))
    assert merged.tolist() == [n_first, len(pieces) - n_first - 1, 1]


def test_explanations_keep_exact_spans_for_every_family(minilm_tok):
    for family, tok in _tokenizers(minilm_tok).items():
        clf = wrap_model(tiny.tiny_classifier(tok), tok, name=f"tiny-{family}", device="cpu", progress=False)
        for method in ("attention", "rollout"):
            for e in explain(clf, TEXTS, method=method, settings=ExplainSettings()):
                assert list(e.words) == [e.text[s:e_] for s, e_ in e.spans]
                assert "".join(e.words) == "".join(e.text.split())
                assert e.attributions.shape == (len(e.words), 2)
                assert np.all(e.scores > 0), (family, method)   # every word receives attention
