"""The shared training loop: which parameters train, LoRA under DP, the caller's model untouched."""
from __future__ import annotations

import random

import pytest
import torch

import tiny
from raikit.audits.errors import RaikitInputError
from raikit.audits.training import DPSettings, TrainSettings, fine_tune


@pytest.fixture(scope="module")
def setup():
    rng = random.Random(0)
    words = ["good", "great", "bad", "awful", "the", "film", "was", "very"]
    texts = [" ".join(rng.choices(words, k=5)) for _ in range(48)]
    labels = [int(any(w in t for w in ("good", "great"))) for t in texts]
    tok = tiny.word_tokenizer(words)
    return tok, tiny.tiny_classifier(tok, num_hidden_layers=3), texts, labels


@pytest.mark.parametrize("scope,dp", [("all", False), ("last_layers", False), ("lora", False), ("lora", True),
                                      ("last_layers", True)])
def test_scopes_train_what_they_say_and_leave_the_input_model_alone(setup, scope, dp):
    tok, model, texts, labels = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainSettings(epochs=2, batch_size=16, physical_batch_size=8, learning_rate=1e-2, max_length=12,
                             scope=scope, last_layers=1, lora_rank=4)
    trained = fine_tune(model, tok, texts, labels, settings=settings,
                        dp=DPSettings(epsilon=5.0, delta=1e-3, accountant="rdp") if dp else None,
                        progress=False)  # RDP: calibrates in a second (PRV is checked elsewhere)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is unchanged
    out = trained.model
    assert type(out).__name__ == "BertForSequenceClassification"  # LoRA merged: a plain model to save and audit
    assert set(out.state_dict()) == set(before)
    changed = {k for k, v in out.state_dict().items() if not torch.allclose(before[k], v)}
    total = sum(p.numel() for p in model.parameters())
    assert "classifier.weight" in changed
    if scope == "all":
        assert trained.trainable_parameters == total and "bert.embeddings.word_embeddings.weight" in changed
    elif scope == "last_layers":
        assert trained.trainable_parameters < total / 2
        assert not any(k.startswith(("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1."))
                       for k in changed)
        assert any(k.startswith("bert.encoder.layer.2.") for k in changed)
    else:  # LoRA on the attention query/value projections, merged back into their weights
        assert trained.trainable_parameters < total / 5
        assert "bert.encoder.layer.0.attention.self.query.weight" in changed
        assert "bert.embeddings.word_embeddings.weight" not in changed
    if dp:
        assert trained.dp["epsilon"] <= 5.0 and trained.dp["steps"] == trained.dp["planned_steps"]
    assert trained.steps == 2 * 3 or dp


def test_last_layers_out_of_range(setup):
    tok, model, texts, labels = setup
    with pytest.raises(RaikitInputError, match="last_layers.*between 1 and 3"):
        fine_tune(model, tok, texts, labels, settings=TrainSettings(scope="last_layers", last_layers=7),
                  progress=False)
