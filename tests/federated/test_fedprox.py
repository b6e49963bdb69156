"""FedProx's proximal term in the shared training loop: 0 changes nothing, a large mu keeps the weights
near the starting (global) weights, and it is refused under DP."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import synth
import tiny
from raikit.audits.errors import RaikitInputError
from raikit.audits.training import DPSettings, TrainSettings, fine_tune


def _distance(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return float(sum((sa[k].float() - sb[k].float()).pow(2).sum() for k in sa) ** 0.5)


def test_proximal_term_pulls_towards_the_start_and_zero_is_plain_training():
    frame = synth.texts(64, seed=3)
    tok = tiny.word_tokenizer(synth.VOCAB)
    model = tiny.tiny_classifier(tok, hidden_size=32, intermediate_size=64)
    texts, labels = list(frame["text"]), (frame["label"] == "positive").to_numpy(dtype=int)
    settings = TrainSettings(epochs=3, batch_size=16, physical_batch_size=8, learning_rate=1e-2, max_length=16)
    plain = fine_tune(model, tok, texts, labels, settings=settings, progress=False)
    zero = fine_tune(model, tok, texts, labels, settings=settings, progress=False, proximal_mu=0.0)
    prox = fine_tune(model, tok, texts, labels, settings=settings, progress=False, proximal_mu=50.0)
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(), zero.model.state_dict().values()))
    assert _distance(prox.model, model) < 0.5 * _distance(plain.model, model)
    assert np.isfinite(prox.final_loss)
    with pytest.raises(RaikitInputError, match="proximal_mu"):
        fine_tune(model, tok, texts, labels, settings=settings, progress=False, proximal_mu=1.0,
                  dp=DPSettings(epsilon=8.0, delta=1e-3))
