"""Model adapters: batched primitives equal the plain one-at-a-time computation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tiny
from raikit.audits import RaikitInputError, load_model, wrap_model
from raikit.audits.models import ModelSpec, detect_kind, resolve_device

SENTENCES = ["The nurse said that she was tired.", "A doctor arrived.", "People from every country live here."]


def test_pll_equals_one_token_at_a_time(random_mlm):
    tok, model = random_mlm.tokenizer, random_mlm.model
    batched = random_mlm.pseudo_log_likelihood(SENTENCES)
    for text, value in zip(SENTENCES, batched):
        ids = tok(text)["input_ids"]
        total = 0.0
        for pos in range(1, len(ids) - 1):
            masked = list(ids)
            masked[pos] = tok.mask_token_id
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([masked])).logits[0, pos]
            total += torch.log_softmax(logits, -1)[ids[pos]].item()
        assert value == pytest.approx(total, abs=1e-3)


def test_fill_mask_and_top_k_agree(random_mlm):
    texts = ["the [MASK] is here.", "she is a [MASK] and he is a [MASK]."]
    scores = random_mlm.fill_mask(texts, ["nurse", "doctor"], mask_index=[0, 1])
    assert scores.shape == (2, 2)
    best = random_mlm.top_k(texts[:1], k=1)[0][0]
    assert best[1] >= scores[0].max() - 1e-5
    with pytest.raises(RaikitInputError, match="single tokens"):
        random_mlm.fill_mask(texts, ["unbelievableness"])
    with pytest.raises(RaikitInputError, match="mask token"):
        random_mlm.fill_mask(["no mask here"], ["nurse"])


def test_causal_log_likelihood_matches_plain_forward(random_causal):
    tok, model = random_causal.tokenizer, random_causal.model
    batched = random_causal.sentence_log_likelihood(SENTENCES)
    for text, value in zip(SENTENCES, batched):
        ids = [random_causal.prefix_id] + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1], -1)
        expected = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
        assert value == pytest.approx(expected, abs=1e-3)
    cont = random_causal.continuation_log_likelihood(["The nurse said"], [" that she was tired."])
    full = random_causal.token_log_probs(["The nurse said that she was tired."])[0]
    n_ctx = len(tok("The nurse said", add_special_tokens=False)["input_ids"])
    assert cont[0] == pytest.approx(full[n_ctx:].sum(), abs=1e-3)


def test_generation_and_next_token(random_causal):
    out = random_causal.generate(["The nurse", "People from every country live"], max_new_tokens=3)
    assert len(out) == 2 and all(len(o) == 1 and isinstance(o[0], str) for o in out)
    top = random_causal.next_token_top_k(["The nurse"], k=4)[0]
    assert len(top) == 4 and top[0][1] >= top[-1][1]


def test_embeddings_are_masked_means(random_encoder):
    emb = random_encoder.embed(SENTENCES)
    tok, model = random_encoder.tokenizer, random_encoder.model
    enc = tok(SENTENCES[1], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state[0]
    np.testing.assert_allclose(emb[1], hidden.mean(0).numpy(), atol=1e-5)


def test_classifier_probabilities_cached_and_batched(random_classifier):
    probs = random_classifier.predict_proba(SENTENCES + SENTENCES[:1])
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs[0], probs[3])
    assert random_classifier.labels == ["negative", "positive"]
    maps = random_classifier.attention_maps(["hello world"])[0]
    assert maps.attentions.shape[:2] == (2, 2) and maps.tokens[0] == "[CLS]"


def test_kind_detection_and_device():
    cfg = type("C", (), {"architectures": ["BertForMaskedLM"]})
    assert detect_kind(cfg) == "masked_lm"
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(RaikitInputError):
        resolve_device("tpu")


def test_load_from_folder_and_refuse_pickle(tmp_path, minilm_tok):
    model = tiny.tiny_mlm(minilm_tok)
    model.save_pretrained(tmp_path / "safe")
    minilm_tok.save_pretrained(tmp_path / "safe")
    adapter = load_model(ModelSpec(id=str(tmp_path / "safe")), device="cpu", progress=False)
    assert adapter.kind == "masked_lm" and len(adapter.weights_sha256) == 64
    (tmp_path / "pickle").mkdir()
    model.config.save_pretrained(tmp_path / "pickle")
    minilm_tok.save_pretrained(tmp_path / "pickle")
    torch.save(model.state_dict(), tmp_path / "pickle" / "pytorch_model.bin")
    with pytest.raises(RaikitInputError, match="allow_pickle"):
        load_model(ModelSpec(id=str(tmp_path / "pickle")), device="cpu")


def test_missing_model_is_an_input_error(tmp_path):
    with pytest.raises(RaikitInputError, match="could not be loaded|no such folder"):
        load_model(ModelSpec(id=str(tmp_path / "nothing-here")), device="cpu", offline=True)
    with pytest.raises(RaikitInputError, match="unknown built-in"):
        load_model("builtin:nope", device="cpu")


def test_wrap_rejects_bad_kind(minilm_tok):
    with pytest.raises(RaikitInputError, match="unknown model kind"):
        wrap_model(tiny.tiny_encoder(minilm_tok), minilm_tok, kind="vision")


def _chat_tokenizer():
    """A word-level tokenizer whose BOS is a chat-turn marker, as in instruct models (SmolLM2, Qwen)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "the", "nurse", "said", "she", "he", "was",
             "tired", "."]
    tk = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>",
                                                eos_token="<|im_end|>", unk_token="<unk>", pad_token="<|im_end|>")


def test_causal_lm_conditions_on_the_document_start_not_a_chat_marker():
    tok = _chat_tokenizer()
    model = tiny.tiny_causal(tok, seed=5)
    lm = wrap_model(model, tok, kind="causal_lm", device="cpu", progress=False)
    assert lm.prefix_id == tok.convert_tokens_to_ids("<|endoftext|>") != tok.bos_token_id
    assert lm.describe()["start_token"] == "<|endoftext|>" and "chat marker" in lm.describe()["start_token_rule"]
    text = "the nurse said she was tired ."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([[lm.prefix_id] + ids])).logits[0, :-1], -1)
    manual = float(sum(logp[i, t] for i, t in enumerate(ids)))
    assert lm.sentence_log_likelihood([text])[0] == pytest.approx(manual, abs=1e-4)
    as_bos = wrap_model(model, tok, kind="causal_lm", device="cpu", progress=False, start_token="bos")
    assert as_bos.prefix_id == tok.bos_token_id
    assert as_bos.sentence_log_likelihood([text])[0] != pytest.approx(manual, abs=1e-4)
    with pytest.raises(RaikitInputError, match="not a token"):
        wrap_model(model, tok, kind="causal_lm", device="cpu", progress=False, start_token="<s>")
    gpt = tiny.word_tokenizer(["the nurse said"], style="gpt")  # a plain BOS stays the start
    plain = wrap_model(tiny.tiny_causal(gpt), gpt, kind="causal_lm", device="cpu", progress=False)
    assert plain.prefix_id == gpt.bos_token_id and plain.describe()["start_token"] == "<bos>"


def test_auto_dtype_is_float32_everywhere():
    """Scoring compares nearly equal log-likelihoods to 3 decimals: bfloat16 is an opt-in, never the default."""
    from raikit.audits.models import _resolve_dtype

    assert ModelSpec(id="x").dtype == "auto"
    assert _resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert _resolve_dtype("auto", torch.device("cuda")) is torch.float32
    assert _resolve_dtype("bfloat16", torch.device("cuda")) is torch.bfloat16
