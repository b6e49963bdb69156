"""The vocabulary head at scored positions only: head split, blocked log-softmax, trimmed top layer.

Scoring a sentence needs logits at a few positions, not at every one: :class:`ScoredHeads` (a mixin of
:class:`~raikit.audits.models.ModelAdapter`) runs the model's body, then its head only where a token is
scored, in blocks of bounded size, each checked once against the model's own full pass.
:class:`TrimmedTopLayer` (masked LMs) also runs a BERT-layout encoder's top layer only at those positions.
See ``docs/models.md``.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch

__all__ = ["ScoredHeads", "TrimmedTopLayer"]


class ScoredHeads:
    """Logits and log-probabilities at chosen positions (mixin of :class:`~raikit.audits.models.ModelAdapter`)."""

    model: Any
    device: torch.device

    def _head_split(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[Any, Any] | None:
        """``(body, head)`` when ``head(body(...).last_hidden_state)`` is the model's logits, else None.

        Running the vocabulary head only at the positions that are scored saves most of its cost (a
        30k-50k-row matrix product at every position). Most masked and causal LMs are
        ``head(base_model(x))`` (``cls``, ``lm_head``, ``predictions``); a few scale or cap their logits.
        So the split is checked once against the model's own forward pass on the first batch
        (``ids``, ``mask``) and used only if the logits agree; otherwise every call takes the full pass.
        """
        if "_split" in self.__dict__:
            return self.__dict__["_split"]
        body = getattr(self.model, "base_model", None)
        head = next((getattr(self.model, n) for n in ("cls", "lm_head", "predictions")
                     if isinstance(getattr(self.model, n, None), torch.nn.Module)), None)
        split = None
        if body is not None and head is not None and body is not self.model:
            n = int(mask[0].sum())
            full = self.model(input_ids=ids[:1, :n], attention_mask=mask[:1, :n]).logits.float()
            hidden = body(input_ids=ids[:1, :n], attention_mask=mask[:1, :n])[0]
            mine = head(hidden).float()
            if mine.shape == full.shape and torch.allclose(mine, full, atol=1e-4, rtol=1e-4):
                split = (body, head)
        self.__dict__["_split"] = split
        return split

    def _scored_log_probs(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                          targets: torch.Tensor, **forward: Any) -> torch.Tensor:
        """``log p(targets[k])`` from the logits at ``(rows[k], cols[k])``, the vocabulary head only there.

        log p = logit(target) - logsumexp(logits), in float32; no full-vocabulary log-softmax at every
        position. Stays on the device (no host synchronisation).
        """
        return self._head_log_probs(*self._vectors_at(ids, mask, rows, cols, **forward), targets=targets)

    def _vectors_at(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                    **forward: Any) -> tuple[torch.Tensor, Any]:
        """Hidden states at ``(rows[k], cols[k])`` and the head that turns them into logits.

        Without a verified split (:meth:`_head_split`), the model's own logits there and ``None``.
        """
        split = self._head_split(ids, mask)
        if split is None:
            out, head = self.model(input_ids=ids, attention_mask=mask, **forward).logits, None
        else:
            body, head = split
            out = body(input_ids=ids, attention_mask=mask, **forward)[0]
        return out[rows.to(out.device), cols.to(out.device)], head

    #: Largest logits block (rows x vocabulary, float32 elements) the head writes at once when scoring:
    #: 64 MB on CPU (a few hundred rows, where the matrix product runs at full speed; a whole batch's
    #: logits would be hundreds of MB), 256 MB on GPUs. Blocks of one size are reused by the allocator
    #: rather than fragmenting the heap.
    head_chunk_elements: ClassVar[dict[str, int]] = {"cpu": 1 << 24, "cuda": 1 << 26}
    #: On CPU, a head narrower than this (hidden size) is bound by memory, not arithmetic: its logits go in
    #: 4 MB blocks that stay in cache while they are normalised (2.4x faster for hidden 8 than 64 MB blocks).
    narrow_head: ClassVar[int] = 128

    def _head_rows(self, vectors: torch.Tensor, head: Any) -> int:
        """Rows of ``vectors`` the head turns into logits at once (see ``head_chunk_elements``)."""
        vocab = int(getattr(self.model.config, "vocab_size", 0) or 50_000)
        elements = self.head_chunk_elements.get(self.device.type, 1 << 24)
        if self.device.type == "cpu" and head is not None and vectors.shape[-1] < self.narrow_head:
            elements = 1 << 20
        return max(1, elements // vocab)

    def _head_log_probs(self, vectors: torch.Tensor, head: Any, *, targets: torch.Tensor) -> torch.Tensor:
        """``log p(targets[k])`` from hidden ``vectors[k]`` (``head`` None: they are logits already).

        The head runs on chunks of rows so that the logits block stays small whatever the batch.
        """
        pieces = [_gathered_log_probs(logits, targets[k:k + len(logits)])
                  for k, logits in self._logit_blocks(vectors, head)]
        return torch.cat(pieces) if pieces else vectors.new_zeros(0, dtype=torch.float32)

    def _logit_blocks(self, vectors: torch.Tensor, head: Any) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first row, float32 logits)`` of successive blocks of :meth:`_head_rows` rows of ``vectors``."""
        rows = self._head_rows(vectors, head)
        for k in range(0, len(vectors), rows):
            part = vectors[k:k + rows]
            yield k, (head(part) if head is not None else part).float()


class TrimmedTopLayer:
    """Masked LMs: the top encoder layer run only at the scored positions.

    A mixin listed before ``ModelAdapter`` (``class MaskedLMAdapter(TrimmedTopLayer, ModelAdapter)``): its
    ``_vectors_at`` falls back on :meth:`ScoredHeads._vectors_at` through ``super()``.
    """

    def _vectors_at(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                    **forward: Any) -> tuple[torch.Tensor, Any]:
        """As :meth:`ScoredHeads._vectors_at`, the top encoder layer run only at the scored positions.

        Below the top layer every position is needed (each attends to all the others), but the top
        layer's output is read only at ``(rows, cols)``: there its keys and values are computed for all
        positions and its query, attention output and feed-forward block only for the scored ones
        (:func:`_top_layer_at`). Used for BERT-layout encoders when under half the positions are scored,
        after a one-time check against the full pass; otherwise the full pass.
        """
        split = self._head_split(ids, mask)
        top = _bert_top_layer(split[0]) if split is not None else None
        if top is None or self.__dict__.get("_trim") is False or 2 * len(rows) > ids.numel():
            return super()._vectors_at(ids, mask, rows, cols, **forward)
        body, head = split

        def trimmed() -> torch.Tensor:
            hidden, layer_mask = _below_layer(body, top, input_ids=ids, attention_mask=mask, **forward)
            return _top_layer_at(top, hidden, layer_mask, rows.to(hidden.device), cols.to(hidden.device))

        if "_trim" in self.__dict__:
            return trimmed(), head
        full, _ = super()._vectors_at(ids, mask, rows, cols, **forward)
        try:  # once: the trimmed top layer must reproduce the full pass (and run at all on this model)
            vectors = trimmed()
            same = bool(torch.allclose(vectors.float(), full.to(vectors.device).float(), atol=1e-4, rtol=1e-3))
        except Exception:  # noqa: BLE001  (a layout this code does not know keeps the full pass)
            same = False
        self.__dict__["_trim"] = same
        return full, head


def _gathered_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits)[k, targets[k]]`` in float32.

    On CPU through the fused log-softmax kernel (torch's CPU ``logsumexp`` runs four passes: on
    SmolLM2's head it added 80% to the matrix product's time, the log-softmax 20%); elsewhere as logit
    minus ``logsumexp``, without materialising the log-softmax.
    """
    logits, targets = logits.float(), targets.to(logits.device)
    if logits.device.type == "cpu":
        return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


class _LayerReached(Exception):
    """Raised by the hook of :func:`_below_layer` to stop a forward pass at a layer's input."""

    def __init__(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> None:
        super().__init__("layer reached")
        self.hidden, self.mask = hidden, mask


def _below_layer(body: Any, layer: Any, **inputs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The input of ``layer`` in ``body(**inputs)`` (hidden states and the prepared attention mask).

    The pass stops there: ``layer`` and everything after it do not run.
    """
    def stop(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        raise _LayerReached(hidden, args[1] if len(args) > 1 else kwargs.get("attention_mask"))

    handle = layer.register_forward_pre_hook(stop, with_kwargs=True)
    try:
        body(**inputs)
    except _LayerReached as reached:
        return reached.hidden, reached.mask
    finally:
        handle.remove()
    raise RuntimeError("the model never called its top layer")


_BERT_LAYER_PARTS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                     "attention.output.LayerNorm", "intermediate", "output.dense", "output.LayerNorm")


def _bert_top_layer(body: Any) -> Any:
    """The last layer of a BERT-layout encoder (BERT, RoBERTa, XLM-R, ELECTRA ...), or None."""
    layers = getattr(getattr(body, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        return None
    top = layers[-1]
    try:
        for name in _BERT_LAYER_PARTS:
            top.get_submodule(name)
    except AttributeError:
        return None
    return top if hasattr(top.attention.self, "num_attention_heads") else None


def _top_layer_at(layer: Any, hidden: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor,
                  cols: torch.Tensor) -> torch.Tensor:
    """A BERT layer's output at positions ``(rows[k], cols[k])`` only, from its input ``hidden``.

    Keys and values come from every position; queries, the attention output and the feed-forward
    block only from the picked ones, grouped by row so no row's keys are copied. ``mask`` is the
    layer's prepared attention mask: None, boolean (True = attend) or additive, shape (B, 1, 1 or L, L).
    """
    attn = layer.attention.self
    heads, size = int(attn.num_attention_heads), int(attn.attention_head_size)
    batch, length, _ = hidden.shape
    counts = torch.bincount(rows, minlength=batch)
    width = int(counts.max()) if len(rows) else 0
    sorted_rows, perm = torch.sort(rows, stable=True)
    slot = torch.empty_like(rows)
    slot[perm] = torch.arange(len(rows), device=rows.device) - (torch.cumsum(counts, 0) - counts)[sorted_rows]
    picked = hidden[rows, cols]
    query = hidden.new_zeros((batch, width, heads * size))
    query[rows, slot] = attn.query(picked)

    def split(x: torch.Tensor, n: int) -> torch.Tensor:
        return x.view(batch, n, heads, size).transpose(1, 2)

    bias = None
    if mask is not None:
        seen = mask[rows, 0, cols if mask.shape[2] > 1 else 0]  # (K, L)
        if seen.dtype == torch.bool:
            seen = torch.zeros(seen.shape, dtype=hidden.dtype, device=seen.device).masked_fill(
                ~seen, torch.finfo(hidden.dtype).min)
        bias = hidden.new_zeros((batch, 1, width, length))
        bias[rows, 0, slot] = seen.to(hidden.dtype)
    context = torch.nn.functional.scaled_dot_product_attention(
        split(query, width), split(attn.key(hidden), length), split(attn.value(hidden), length), attn_mask=bias,
        scale=float(getattr(attn, "scaling", size ** -0.5)))
    context = context.transpose(1, 2).reshape(batch, width, heads * size)[rows, slot]
    out = layer.attention.output
    attended = out.LayerNorm(out.dense(context) + picked)
    return layer.output.LayerNorm(layer.output.dense(layer.intermediate(attended)) + attended)


def _take(tensor: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``tensor[rows, cols]`` for (row, col) pairs, the index built on the tensor's own device."""
    index = torch.as_tensor(list(pairs), dtype=torch.long).reshape(-1, 2)
    if tensor.device.type == "cuda":
        index = index.pin_memory().to(tensor.device, non_blocking=True)
    return tensor[index[:, 0], index[:, 1]]
