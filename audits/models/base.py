"""The base adapter: a model and its tokenizer, provenance, tokenising, embeddings and attention maps.

Batching comes from :class:`~raikit.audits.models.batching.TokenBatching`, scoring at chosen positions
from :class:`~raikit.audits.models.heads.ScoredHeads`; the kind-specific adapters build on this class.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from raikit.audits.models.batching import TokenBatching
from raikit.audits.models.devices import weights_sha256
from raikit.audits.models.heads import ScoredHeads
from raikit.audits.models.spec import ModelKind

__all__ = ["AttentionMaps", "ModelAdapter"]


@dataclass(frozen=True)
class AttentionMaps:
    """Attention weights of one text.

    Attributes
    ----------
    tokens : list of str
        The tokens, special tokens included.
    offsets : list of tuple of int
        Character span of each token in the text ((0, 0) for special tokens).
    attentions : ndarray, shape (layers, heads, tokens, tokens)
        Row ``i`` is where token ``i`` attends to.
    """

    tokens: list[str]
    offsets: list[tuple[int, int]]
    attentions: np.ndarray = field(repr=False)


class ModelAdapter(TokenBatching, ScoredHeads):
    """Base adapter: a model, its tokenizer, batching and the shared primitives.

    Use :func:`load_model` or :func:`wrap_model` rather than building one directly.
    """

    kind: ClassVar[ModelKind] = "encoder"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        device: torch.device,
        batch_size: int = 32,
        max_length: int = 512,
        progress: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.device = device
        self.batch_size = int(batch_size)
        self.configured_batch_size = int(batch_size)
        self.oom_retries = 0
        limits = [max_length, getattr(tokenizer, "model_max_length", None)]
        for attr in ("max_position_embeddings", "n_positions"):
            limits.append(getattr(model.config, attr, None))
        self.max_length = int(min(x for x in limits if isinstance(x, int) and x > 0))
        self.progress = progress
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._sha256: str | None = None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

    # -- description -------------------------------------------------------------------------
    @property
    def weights_sha256(self) -> str:
        """SHA-256 over every parameter and buffer (sorted by name, raw bytes); computed once."""
        if self._sha256 is None:
            self._sha256 = weights_sha256(self.model)
        return self._sha256

        return self._sha256

    def describe(self) -> dict[str, Any]:
        """Facts about the model for provenance: id, kind, weights hash, size, dtype, device."""
        n_params = sum(p.numel() for p in self.model.parameters())
        dtype = next(self.model.parameters()).dtype
        return {
            "id": self.name,
            "kind": self.kind,
            "weights_sha256": self.weights_sha256,
            "n_parameters": int(n_params),
            "dtype": str(dtype).removeprefix("torch."),
            "device": str(self.device),
            "architecture": type(self.model).__name__,
            "batch_size": self.configured_batch_size,
            "batch_size_used": self.batch_size,
            "oom_retries": self.oom_retries,
            **({"metadata": self.metadata} if self.metadata else {}),
        }

    #: Texts tokenised per call of the tokenizer in :meth:`encode` (its per-text objects are dropped per
    #: chunk, so a 100k-text call holds the id lists, not 100k tokenizer encodings at once).
    encode_chunk: ClassVar[int] = 4096

    def encode(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text, truncated to ``max_length``."""
        _check_texts(texts)
        texts = list(texts)
        out: list[list[int]] = []
        for start in range(0, len(texts), self.encode_chunk):
            chunk = self.tokenizer(texts[start:start + self.encode_chunk], add_special_tokens=add_special_tokens,
                                   truncation=True, max_length=self.max_length)
            out.extend(list(ids) for ids in chunk["input_ids"])
        return out

    # -- shared primitives -------------------------------------------------------------------
    @torch.inference_mode()
    def embed(self, texts: Sequence[str], *, layer: int = -1) -> np.ndarray:
        """Sentence embeddings: mean of the hidden states over the attention mask.

        Parameters
        ----------
        texts : sequence of str
        layer : int
            Which hidden layer to pool (-1 is the last).

        Returns
        -------
        ndarray, shape (n_texts, hidden_size), float32
        """
        encoded = self.encode(texts)
        order = self._length_order(encoded)
        out: list[np.ndarray | None] = [None] * len(encoded)
        base = getattr(self.model, "base_model", self.model)

        def step(idx: np.ndarray) -> None:
            ids, mask = self._pad([encoded[i] for i in idx])
            hidden = base(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            for row, i in enumerate(idx):
                out[i] = pooled[row].float().cpu().numpy()

        self._each_batch(order, step, desc="embedding")
        return np.stack(out) if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)

    #: Attention maps kept per text (each is layers x heads x tokens x tokens floats).
    attention_cache_size: ClassVar[int] = 64

    @torch.inference_mode()
    def attention_maps(self, texts: Sequence[str]) -> list[AttentionMaps]:
        """Attention weights of every layer and head for each text (eager attention).

        Texts go through the model in length-sorted, right-padded batches (one forward pass per batch);
        each text's maps are cut to its own tokens, so they equal a pass on the text alone. The maps of
        the last :attr:`attention_cache_size` texts are cached, so the attention and rollout explainers
        and the section's details share one pass.
        """
        _check_texts(texts)
        cache: OrderedDict[str, AttentionMaps] = self.__dict__.setdefault("_attention_cache", OrderedDict())
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            enc = self.tokenizer(list(missing), return_offsets_mapping=True, truncation=True,
                                 max_length=self.max_length)
            ids = [list(x) for x in enc["input_ids"]]
            order = self._length_order(ids)

            def step(idx: np.ndarray) -> None:
                input_ids, mask = self._pad([ids[i] for i in idx])
                out = self.model(input_ids=input_ids, attention_mask=mask, output_attentions=True)
                stacked = torch.stack(list(out.attentions), dim=1).float().cpu().numpy()  # (B, L, H, T, T)
                for row, i in enumerate(idx):
                    n = len(ids[i])
                    offsets = [tuple(int(x) for x in pair) for pair in enc["offset_mapping"][i]]
                    cache[missing[i]] = AttentionMaps(
                        tokens=self.tokenizer.convert_ids_to_tokens(ids[i]), offsets=offsets,
                        attentions=np.ascontiguousarray(stacked[row, :, :, :n, :n]))

            with self._eager_attention(True):
                self._each_batch(order, step, desc="attention")
        results = [cache[t] for t in texts]
        while len(cache) > max(self.attention_cache_size, len(set(texts))):
            cache.popitem(last=False)
        return results

    @contextlib.contextmanager
    def _eager_attention(self, needed: bool) -> Iterator[None]:
        """Switch to eager attention (the only kind that returns weights) for the block, then back."""
        previous = getattr(self.model.config, "_attn_implementation", None)
        switch = needed and previous != "eager" and hasattr(self.model, "set_attn_implementation")
        if switch:
            self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            if switch and previous is not None:
                self.model.set_attn_implementation(previous)


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise TypeError("pass a sequence of texts, not a single string")
