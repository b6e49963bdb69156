"""Issue 21 items 1-3, 6 (empty batch) and issue 22 item 2: the DP noise seed, refused accountants, a bounded
epsilon, the position ids training gives RoBERTa-style models, and the noise step of an empty Poisson batch."""
from __future__ import annotations

import time

import pytest
import torch
import transformers

import tiny
from raikit.audits.errors import RaikitInputError
from raikit.audits.training import MAX_EPSILON, DPSettings, TrainSettings, forward_inputs, fine_tune

WORDS = ["good", "great", "bad", "awful", "the", "film", "was", "very"]
TEXTS = ["good film", "the film was very bad", "great", "awful awful film", "the very good film was great",
         "bad", "the film", "was very awful"] * 3
LABELS = [1, 0, 1, 0, 1, 0, 1, 0] * 3
SETTINGS = TrainSettings(epochs=1, batch_size=8, physical_batch_size=8, learning_rate=1e-2, max_length=12, seed=0)


@pytest.fixture(scope="module")
def bert():
    tok = tiny.word_tokenizer(WORDS)
    return tok, tiny.tiny_classifier(tok)


def _weights(trained) -> torch.Tensor:
    return torch.cat([p.flatten() for p in trained.model.parameters()])


def test_dp_noise_is_fresh_unless_reproducible_noise_is_asked_for(bert):
    tok, model = bert
    dp = DPSettings(epsilon=4.0, delta=1e-3, accountant="rdp")
    a, b = (fine_tune(model, tok, TEXTS, LABELS, settings=SETTINGS, dp=dp, progress=False) for _ in range(2))
    # the same run seed, yet other noise: the seed written into results.json cannot replay it
    assert not torch.allclose(_weights(a), _weights(b))
    assert a.dp["reproducible_noise"] is False and "not recorded" in a.dp["noise_seed"]
    assert not any(ch.isdigit() for ch in a.dp["noise_seed"].replace("63-bit", ""))  # no seed value in the record
    seeded = DPSettings(epsilon=4.0, delta=1e-3, accountant="rdp", reproducible_noise=True)
    c, d = (fine_tune(model, tok, TEXTS, LABELS, settings=SETTINGS, dp=seeded, progress=False) for _ in range(2))
    assert torch.equal(_weights(c), _weights(d))  # opt-in: replayable, and the record says what that costs
    assert c.dp["reproducible_noise"] is True and "does not hold against anyone who knows" in c.dp["noise_seed"]


def test_gdp_is_refused_with_one_line_and_no_scipy_error(bert):
    tok, model = bert
    with pytest.raises(RaikitInputError, match="key 'accountant': 'gdp' is refused for a reported epsilon"):
        fine_tune(model, tok, TEXTS, LABELS, settings=SETTINGS, progress=False,
                  dp=DPSettings(epsilon=8.0, delta=1e-4, accountant="gdp"))


def test_the_privacy_check_refuses_gdp_at_the_size_that_crashed_it(tmp_path):
    """N = 700, B = 64, 3 epochs, epsilon 8: today a raw scipy ValueError from the GDP calibration."""
    import pandas as pd

    from raikit.audits.sections import RunContext
    from raikit.privacy import PrivacyOptions
    from raikit.privacy._section import check

    pd.DataFrame({"text": [f"text {i}" for i in range(1000)], "label": ["a", "b"] * 500}).to_csv(
        tmp_path / "d.csv", index=False)
    options = PrivacyOptions(data=str(tmp_path / "d.csv"), held_out=0.3, batch_size=64, epochs=3, epsilon=8.0,
                             accountant="gdp")
    with pytest.raises(RaikitInputError, match="'gdp' is refused"):
        check(options, RunContext(seed=0, base_dir=tmp_path, progress=False))


@pytest.mark.parametrize("epsilon", [1000.0, 1e4, 1e308])
def test_a_huge_target_epsilon_is_a_config_error_at_once(bert, epsilon):
    tok, model = bert
    started = time.perf_counter()
    with pytest.raises(RaikitInputError, match=f"key 'epsilon': must be at most {MAX_EPSILON:g}"):
        fine_tune(model, tok, TEXTS, LABELS, settings=SETTINGS, progress=False,
                  dp=DPSettings(epsilon=epsilon, delta=1e-3, accountant="prv"))
    assert time.perf_counter() - started < 5  # was minutes in Opacus's noise search


def test_the_largest_accepted_epsilon_calibrates_and_ends(bert):
    tok, model = bert
    trained = fine_tune(model, tok, TEXTS, LABELS, settings=SETTINGS, progress=False,
                        dp=DPSettings(epsilon=MAX_EPSILON, delta=1e-3, accountant="rdp"))
    assert 0 < trained.dp["epsilon"] <= MAX_EPSILON


def _tiny_roberta(tok) -> transformers.RobertaForSequenceClassification:
    torch.manual_seed(0)
    cfg = transformers.RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=40, pad_token_id=tok.pad_token_id,
                                     type_vocab_size=1, num_labels=2, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    return transformers.RobertaForSequenceClassification(cfg).eval()


def test_training_gives_roberta_the_position_ids_of_its_own_forward():
    tok = tiny.word_tokenizer(WORDS, style="roberta")
    assert tok.pad_token_id == 0
    model = _tiny_roberta(tok)
    enc = tok(["good film", "the very good film was great", "bad"], padding=True, return_tensors="pt")
    with torch.no_grad():
        own = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        trained_view = model(**forward_inputs(model, enc["input_ids"], enc["attention_mask"])).logits
        shifted = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                        position_ids=torch.arange(enc["input_ids"].shape[1]).repeat(3, 1)).logits
    assert not torch.allclose(own, shifted, atol=1e-4)  # the check can fail: arange(L) gives other logits
    torch.testing.assert_close(trained_view, own)
    ids = forward_inputs(model, enc["input_ids"], enc["attention_mask"])["position_ids"]
    assert ids.is_contiguous() and ids.shape == enc["input_ids"].shape and int(ids[0, 0]) == tok.pad_token_id + 1


def test_bert_keeps_counting_positions_from_zero(bert):
    tok, model = bert
    enc = tok(["good film", "bad"], padding=True, return_tensors="pt")
    ids = forward_inputs(model, enc["input_ids"], enc["attention_mask"])["position_ids"]
    assert ids.tolist() == [list(range(ids.shape[1]))] * 2


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_an_empty_poisson_batch_still_takes_its_noise_step(mode):
    """4 examples at sample rate 1/4: about a third of the 20 logical batches are empty. Each is a step the
    accountant counts, so each must release noise (today it was skipped: fewer steps than accounted for)."""
    tok = tiny.word_tokenizer(WORDS)
    model = tiny.tiny_classifier(tok)
    settings = TrainSettings(epochs=5, batch_size=1, physical_batch_size=1, max_length=8, seed=3)
    trained = fine_tune(model, tok, TEXTS[:4], LABELS[:4], settings=settings, progress=False,
                        dp=DPSettings(epsilon=5.0, delta=1e-3, accountant="rdp", reproducible_noise=True,
                                      grad_sample_mode=mode))
    assert trained.steps == trained.dp["planned_steps"] == trained.dp["steps"] == 20
