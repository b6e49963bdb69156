"""Fast scoring paths of the adapters (head only at scored positions, shared context caches,
token-sized batches) give the numbers of the plain full forward pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import tiny
from raikit.audits import wrap_model

SENTENCES = ["The nurse said that she was tired.", "A doctor arrived.", "People from every country live here.",
             "The nurse said that he was busy today."]


def _plain_token_log_probs(adapter, text: str) -> np.ndarray:
    ids = [adapter.prefix_id] + adapter.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(adapter.model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
    return logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy()


@pytest.fixture(scope="module")
def tiny_llama(random_causal):
    """A random Llama (rotary positions, grouped-query attention) on the tiny BPE vocabulary."""
    tok = random_causal.tokenizer
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return wrap_model(transformers.LlamaForCausalLM(config), tok, name="tiny-llama", device="cpu", progress=False)


@pytest.mark.parametrize("which", ["random_causal", "tiny_llama"])
def test_shared_prefix_and_shared_context_equal_plain_passes(which, request):
    adapter = request.getfixturevalue(which)
    assert adapter._head_split(*adapter._pad([[1, 2, 3]])) is not None  # the head-only path is the one tested
    groups = [SENTENCES[:2], [SENTENCES[0], SENTENCES[3], SENTENCES[2]], [SENTENCES[1]]]
    shared = adapter.shared_prefix_token_log_probs(groups)
    for group, lps in zip(groups, shared):
        for text, lp in zip(group, lps):
            np.testing.assert_allclose(lp, _plain_token_log_probs(adapter, text), atol=1e-5)
    # the same context with three continuations (run once) and a different one, against one pass each
    contexts = ["The nurse said", "The nurse said", "A doctor", "The nurse said"]
    conts = [" that she was tired.", " hello", " arrived.", " that he was busy today."]
    grouped = adapter.continuation_log_likelihood(contexts, conts)
    for ctx, cont, value in zip(contexts, conts, grouped):
        n_ctx = len(adapter.tokenizer(ctx, add_special_tokens=False)["input_ids"])
        n_cont = len(adapter.tokenizer(cont, add_special_tokens=False)["input_ids"])
        ids = [adapter.prefix_id] + adapter.encode([ctx], add_special_tokens=False)[0] + adapter.encode(
            [cont], add_special_tokens=False)[0]
        with torch.no_grad():
            logp = torch.log_softmax(adapter.model(input_ids=torch.tensor([ids])).logits[0, :-1], -1)
        expected = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])][n_ctx:n_ctx + n_cont].sum().item()
        assert value == pytest.approx(expected, abs=1e-4)


def test_token_sized_batches_cover_every_item_once(random_causal):
    lengths = np.array([40, 30, 30, 10, 5, 5, 5, 3, 2, 1] * 20)
    order = np.argsort(-lengths, kind="stable")
    seen: list[np.ndarray] = []
    old = random_causal.batch_size
    random_causal.batch_size = 2
    try:
        random_causal._each_batch(order, seen.append, desc="t", lengths=lengths)
    finally:
        random_causal.batch_size = old
    assert sorted(np.concatenate(seen).tolist()) == list(range(len(lengths)))
    budget = 2 * random_causal.tokens_per_row
    for batch in seen:  # a batch never holds more padded tokens than the budget, unless it is one item
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= budget
    assert max(len(b) for b in seen) > 2  # short items share wider batches than batch_size rows


def test_masked_head_only_path_matches_full_logits(random_mlm):
    ids, mask = random_mlm._pad(random_mlm.encode(["the nurse is here ."]))
    assert random_mlm._head_split(ids, mask) is not None
    rows, cols = torch.tensor([0, 0]), torch.tensor([1, 3])
    with torch.no_grad():
        full = random_mlm.model(input_ids=ids, attention_mask=mask).logits[rows, cols]
    with torch.no_grad():
        vectors, head = random_mlm._vectors_at(ids, mask, rows, cols)
        mine = head(vectors) if head is not None else vectors
    torch.testing.assert_close(mine, full, atol=1e-5, rtol=1e-5)


def test_models_whose_head_is_not_a_plain_projection_take_the_full_pass(random_causal):
    """A model that rescales its logits after the head fails the one-time check and uses its own forward."""
    model = tiny.tiny_causal(random_causal.tokenizer, seed=1)
    original = model.forward

    def scaled(*args, **kwargs):
        out = original(*args, **kwargs)
        out.logits = out.logits * 0.5
        return out

    model.forward = scaled
    adapter = wrap_model(model, random_causal.tokenizer, name="scaled", device="cpu", progress=False)
    assert adapter._head_split(*adapter._pad([[1, 2, 3]])) is None
    value = adapter.token_log_probs(SENTENCES[:1])[0]
    np.testing.assert_allclose(value, _plain_token_log_probs(adapter, SENTENCES[0]), atol=1e-5)
    shared = adapter.shared_prefix_token_log_probs([SENTENCES[:2]])[0][0]
    np.testing.assert_allclose(shared, value, atol=1e-5)
