"""Packed rows (several sequences per row, no padding) and the BERT top layer run only at scored
positions give the numbers of plain passes, and a model that cannot be packed keeps padded batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import tiny
from raikit.audits import wrap_model

SENTENCES = ["The nurse said that she was tired.", "A doctor arrived.", "People from every country live here.",
             "The nurse said that he was busy today.", "Hello.", "They work hard, and they live well in the city."]


def _mlm(tok, *, pack: bool):
    adapter = wrap_model(tiny.tiny_mlm(tok), tok, name="tiny-mlm", device="cpu", progress=False)
    if not pack:
        adapter.pack_row_tokens = {}  # as on a device without packing: padded batches
    return adapter


def _reference_pll(adapter, text: str) -> float:
    """The CrowS-Pairs reference loop: one full forward pass per masked token."""
    ids = adapter.tokenizer(text)["input_ids"]
    total = 0.0
    with torch.no_grad():
        for pos in adapter.content_positions(ids):
            masked = list(ids)
            masked[pos] = adapter.mask_token_id
            logits = adapter.model(input_ids=torch.tensor([masked])).logits[0, pos]
            total += torch.log_softmax(logits, -1)[ids[pos]].item()
    return total


def test_masked_lm_packed_and_trimmed_equal_reference(minilm_tok):
    packed, padded = _mlm(minilm_tok, pack=True), _mlm(minilm_tok, pack=False)
    pll = packed.pseudo_log_likelihood(SENTENCES)
    assert packed.__dict__["_packs"] is True and packed.__dict__["_trim"] is True  # both fast paths ran
    np.testing.assert_allclose(pll, [_reference_pll(packed, s) for s in SENTENCES], atol=1e-4)
    np.testing.assert_allclose(padded.pseudo_log_likelihood(SENTENCES), pll, atol=1e-4)
    assert "_packs" not in padded.__dict__ and padded.__dict__["_trim"] is True  # trimmed on padded rows too

    texts = [s.replace("nurse", "[MASK]").replace("doctor", "[MASK]") for s in SENTENCES if "nurse" in s or "doctor" in s]
    texts += ["[MASK] live here.", "They [MASK] hard, and they live well in the [MASK]."]
    words = ["he", "she", "nurse", "city"]
    got = packed.fill_mask(texts, words)
    np.testing.assert_allclose(padded.fill_mask(texts, words), got, atol=1e-5)
    word_ids = [i[0] for i in packed.candidate_ids(words)]
    for text, row in zip(texts, got):
        ids = minilm_tok(text)["input_ids"]
        with torch.no_grad():
            logits = packed.model(input_ids=torch.tensor([ids])).logits[0, ids.index(packed.mask_token_id)]
        np.testing.assert_allclose(row, torch.log_softmax(logits, -1)[word_ids].numpy(), atol=1e-5)


def _llama(tok):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return wrap_model(transformers.LlamaForCausalLM(config), tok, name="tiny-llama", device="cpu", progress=False)


def _plain(adapter, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        logp = torch.log_softmax(adapter.model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
    return logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("pack", [True, False])
def test_causal_packed_rows_and_trees_equal_plain_passes(random_causal, arch, pack):
    tok = random_causal.tokenizer
    adapter = (wrap_model(tiny.tiny_causal(tok), tok, name="tiny-gpt2", device="cpu", progress=False)
               if arch == "gpt2" else _llama(tok))
    if not pack:
        adapter.pack_row_tokens = {}  # the shared key/value cache path (GPUs)
    encoded = [[adapter.prefix_id] + e for e in adapter.encode(SENTENCES, add_special_tokens=False)]
    for lp, ids in zip(adapter.token_log_probs(SENTENCES), encoded):
        np.testing.assert_allclose(lp, _plain(adapter, ids), atol=1e-5)
    groups = [SENTENCES[:2], [SENTENCES[0], SENTENCES[3], SENTENCES[2]], SENTENCES[4:]]
    for group, lps in zip(groups, adapter.shared_prefix_token_log_probs(groups)):
        for text, lp in zip(group, lps):
            ids = [adapter.prefix_id] + adapter.encode([text], add_special_tokens=False)[0]
            np.testing.assert_allclose(lp, _plain(adapter, ids), atol=1e-5)
    contexts = ["The nurse said", "The nurse said", "A doctor", "The nurse said"]
    conts = [" that she was tired.", " hello", " arrived.", " that he was busy today."]
    got = adapter.continuation_log_likelihood(contexts, conts)
    for ctx, cont, value in zip(contexts, conts, got):
        c = [adapter.prefix_id] + adapter.encode([ctx], add_special_tokens=False)[0]
        n = len(adapter.encode([cont], add_special_tokens=False)[0])
        assert value == pytest.approx(_plain(adapter, c + adapter.encode([cont], add_special_tokens=False)[0])[-n:].sum(),
                                      abs=1e-4)
    assert adapter.__dict__.get("_packs") is (True if pack else None)


def test_a_model_that_ignores_position_ids_keeps_padded_batches(random_causal):
    """GPT-2 has absolute positions (rotary ones would not notice: they see only distances)."""
    tok = random_causal.tokenizer
    adapter = wrap_model(tiny.tiny_causal(tok), tok, name="tiny-gpt2", device="cpu", progress=False)
    body = adapter.model.base_model
    forward = body.forward
    body.forward = lambda *args, position_ids=None, **kwargs: forward(*args, **kwargs)  # drops the packed positions
    encoded = [[adapter.prefix_id] + e for e in adapter.encode(SENTENCES, add_special_tokens=False)]
    for lp, ids in zip(adapter.token_log_probs(SENTENCES), encoded):
        np.testing.assert_allclose(lp, _plain(adapter, ids), atol=1e-5)
    assert adapter.__dict__["_packs"] is False


def test_rows_hold_every_item_once_without_overlap(random_mlm):
    rng = np.random.default_rng(0)
    lengths = sorted(rng.integers(1, 90, size=200).tolist(), reverse=True)
    fill, places = random_mlm._fit_rows(lengths)
    cap = max(fill)
    used = [np.zeros(cap, dtype=int) for _ in fill]
    for n, (row, at) in zip(lengths, places):
        used[row][at:at + n] += 1
    assert all(u.max() <= 1 for u in used)  # no two items share a slot
    assert sum(int(u.sum()) for u in used) == sum(lengths) == sum(fill)
    assert sum(fill) / (len(fill) * cap) > 0.9  # rows are nearly full


@pytest.mark.parametrize("packed", [True, False])
def test_out_of_memory_retries_shrink_until_the_batch_fits(random_mlm, packed):
    """A batch that runs out of memory is retried strictly smaller, whatever the token budget allows."""
    adapter = wrap_model(random_mlm.model, random_mlm.tokenizer, name="oom", device="cpu", batch_size=16,
                         progress=False)
    lengths = np.full(2000, 10)
    seen: list[int] = []
    calls: list[int] = []

    def step(idx: np.ndarray) -> None:
        calls.append(len(idx))
        assert len(calls) < 500, "the retries do not shrink the batch"
        if len(idx) > 40:
            raise MemoryError("cannot allocate memory")
        seen.extend(idx.tolist())

    adapter._each_batch(np.arange(2000), step, desc="t", lengths=lengths, packed=packed)
    assert sorted(seen) == list(range(2000))
    assert 1 <= adapter.oom_retries <= 8


def test_sliding_window_models_are_not_packed(random_causal):
    """One packed 4D mask would give a sliding-window model full attention: such models keep padded rows."""
    tok = random_causal.tokenizer
    torch.manual_seed(0)
    config = transformers.MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=128, sliding_window=6)
    adapter = wrap_model(transformers.MistralForCausalLM(config), tok, name="tiny-mistral", device="cpu",
                         progress=False)
    texts = ["The nurse.", "A doctor.", SENTENCES[5]]
    encoded = [[adapter.prefix_id] + e for e in adapter.encode(texts, add_special_tokens=False)]
    assert len(encoded[-1]) > 6
    for lp, ids in zip(adapter.token_log_probs(texts), encoded):
        np.testing.assert_allclose(lp, _plain(adapter, ids), atol=1e-5)
    assert adapter.__dict__["_packs"] is False


def test_groups_without_texts_are_skipped(random_causal):
    tok = random_causal.tokenizer
    adapter = wrap_model(tiny.tiny_causal(tok), tok, name="tiny-gpt2", device="cpu", progress=False)
    assert adapter.shared_prefix_token_log_probs([[]]) == [[]]
    out = adapter.shared_prefix_token_log_probs([SENTENCES[:2], [], [SENTENCES[3]]])
    assert [len(g) for g in out] == [2, 0, 1]
    for text, lp in zip(SENTENCES[:2] + [SENTENCES[3]], out[0] + out[2]):
        ids = [adapter.prefix_id] + adapter.encode([text], add_special_tokens=False)[0]
        np.testing.assert_allclose(lp, _plain(adapter, ids), atol=1e-5)
    assert adapter.__dict__["_packs"] is True
