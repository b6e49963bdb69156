"""Models bigger than one device: loaded with accelerate's device_map, split across CPU and disk offload,
every adapter primitive gives the numbers of the same model loaded whole."""
from __future__ import annotations

import numpy as np
import pytest
import transformers

import tiny
from raikit.audits import RaikitInputError, load_model
from raikit.audits.models import ModelSpec

TEXTS = ["The nurse said that she was tired.", "A doctor arrived.", "People from every country live here."]


# transformers 5.24's automatic map fails on a BERT MLM whose tied embeddings/decoder must be split
# (IndexError in get_module_size_with_ties), so the masked LM takes an explicit table, as a user would.
MLM_MAP = {"bert.embeddings": "cpu", "bert.encoder.layer.0": "disk", "bert.encoder.layer.1": "cpu", "cls": "cpu"}


def _save(model, tok, folder):
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def _split(folder, tmp_path, kind, cpu_bytes=None, device_map="auto"):
    """Load with ``cpu_bytes`` of weights in memory (or an explicit map); the rest goes to disk."""
    spec = ModelSpec(id=folder, kind=kind, device_map=device_map,
                     max_memory=None if cpu_bytes is None else {"cpu": cpu_bytes},
                     offload_folder=str(tmp_path / f"offload-{kind}"))
    return load_model(spec, device="cpu", offline=True, progress=False)


@pytest.fixture(scope="module")
def causal_pair(tmp_path_factory):
    corpus = ["The nurse said that she was tired.", "The doctor said that he was busy.",
              "People from every country live here, and they work hard."] * 20
    tok = tiny.bpe_tokenizer(corpus)
    tmp = tmp_path_factory.mktemp("causal")
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                      tie_word_embeddings=False)
    folder = _save(transformers.LlamaForCausalLM(config), tok, tmp / "model")
    return load_model(ModelSpec(id=folder, kind="causal_lm"), device="cpu", offline=True, progress=False), \
        _split(folder, tmp, "causal_lm", 120_000)


@pytest.fixture(scope="module")
def mlm_pair(tmp_path_factory, minilm_tok):
    tmp = tmp_path_factory.mktemp("mlm")
    folder = _save(tiny.tiny_mlm(minilm_tok), minilm_tok, tmp / "model")
    return load_model(ModelSpec(id=folder, kind="masked_lm"), device="cpu", offline=True, progress=False), \
        _split(folder, tmp, "masked_lm", device_map=MLM_MAP)


def test_causal_lm_split_over_cpu_and_disk_gives_the_same_numbers(causal_pair):
    whole, split = causal_pair
    placed = set(split.model.hf_device_map.values())
    assert "disk" in placed and "cpu" in placed, split.model.hf_device_map
    np.testing.assert_allclose(split.sentence_log_likelihood(TEXTS), whole.sentence_log_likelihood(TEXTS), atol=1e-4)
    ctx, cont = ["The nurse said", "The nurse said"], [" that she was tired.", " hello"]
    np.testing.assert_allclose(split.continuation_log_likelihood(ctx, cont),
                               whole.continuation_log_likelihood(ctx, cont), atol=1e-4)
    groups = [TEXTS[:2], TEXTS[1:]]
    for a, b in zip(split.shared_prefix_token_log_probs(groups), whole.shared_prefix_token_log_probs(groups)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-4)
    assert [w for w, _ in split.next_token_top_k(TEXTS, k=3)[0]] == [w for w, _ in whole.next_token_top_k(TEXTS, k=3)[0]]
    assert split.generate(TEXTS[:1], max_new_tokens=3) == whole.generate(TEXTS[:1], max_new_tokens=3)
    np.testing.assert_allclose(split.embed(TEXTS), whole.embed(TEXTS), atol=1e-4)
    assert split.describe()["weights_sha256"] == whole.describe()["weights_sha256"]


def test_masked_lm_split_over_cpu_and_disk_gives_the_same_numbers(mlm_pair):
    whole, split = mlm_pair
    placed = set(split.model.hf_device_map.values())
    assert "disk" in placed and "cpu" in placed, split.model.hf_device_map
    np.testing.assert_allclose(split.pseudo_log_likelihood(TEXTS), whole.pseudo_log_likelihood(TEXTS), atol=1e-4)
    masked = ["the [MASK] is here.", "she is a [MASK]."]
    np.testing.assert_allclose(split.fill_mask(masked, ["nurse", "doctor"]),
                               whole.fill_mask(masked, ["nurse", "doctor"]), atol=1e-4)
    for a, b in zip(split.top_k(masked, k=3), whole.top_k(masked, k=3)):
        assert [w for w, _ in a] == [w for w, _ in b]
        np.testing.assert_allclose([v for _, v in a], [v for _, v in b], atol=1e-4)
    ids = split.encode(TEXTS)
    for (a, _), (b, _) in zip(split.unmasked_token_log_probs(ids), whole.unmasked_token_log_probs(ids)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    maps_a, maps_b = split.attention_maps(TEXTS[:1])[0], whole.attention_maps(TEXTS[:1])[0]
    np.testing.assert_allclose(maps_a.attentions, maps_b.attentions, atol=1e-5)
    assert split.describe()["weights_sha256"] == whole.describe()["weights_sha256"]


def test_placement_options_need_a_device_map():
    with pytest.raises(ValueError, match="need device_map"):
        ModelSpec(id="x", max_memory={"cpu": "1GB"})
