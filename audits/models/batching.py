"""Token batches: sizing by tokens, the out-of-memory retry, padded rows, packed rows and tree rows.

:class:`TokenBatching` is a mixin of :class:`~raikit.audits.models.ModelAdapter`: it reads the adapter's
``model``, ``tokenizer``, ``device``, ``batch_size``, ``name`` and ``progress`` and keeps ``batch_size``
and ``oom_retries`` up to date. Every adapter method that runs the model goes through
:meth:`TokenBatching._each_batch`; packed rows (several sequences per row, each attending only to itself)
and tree rows (a shared beginning followed by its continuations, :meth:`TokenBatching._pack` with
``tails``) are used where :meth:`TokenBatching._packing_works` found they give the model's own results.
See ``docs/models.md`` for the rules and their measurements.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from raikit.audits.progress import progress_bar

__all__ = ["TokenBatching"]


class TokenBatching:
    """Batching of an adapter's forward passes (mixin of :class:`~raikit.audits.models.ModelAdapter`)."""

    model: Any
    tokenizer: Any
    device: torch.device
    name: str
    batch_size: int
    progress: bool
    oom_retries: int

    # -- batching helpers --------------------------------------------------------------------
    #: Token budget of one batch in :meth:`_each_batch` with ``lengths``: ``batch_size`` rows of this many tokens.
    tokens_per_row: ClassVar[int] = 48
    #: Most rows in a token-sized batch, as a multiple of ``batch_size`` (short sequences fill wider batches).
    max_rows_factor: ClassVar[int] = 4
    #: Padding a token-sized batch may add: it closes before an item shorter than ``(1 - pad_tolerance)``
    #: times its longest, once it holds ``min_batch_tokens`` (padded tokens cost full price on a CPU).
    pad_tolerance: ClassVar[float] = 0.05
    #: Smallest batch (padded tokens, by device type) the padding rule may close; below it, matrix
    #: products run at a poor share of the hardware, so short runs of lengths share a batch anyway.
    min_batch_tokens: ClassVar[dict[str, int]] = {"cpu": 192, "cuda": 4096}

    def _batch_rows(self, first_length: int) -> int:
        """Most rows of the next token-sized batch whose longest sequence has ``first_length`` tokens."""
        budget = self.batch_size * self.tokens_per_row
        return max(1, min(budget // max(1, first_length), self.batch_size * self.max_rows_factor))

    def _batch_end(self, order: np.ndarray, lengths: Sequence[int] | np.ndarray, start: int) -> int:
        """End (exclusive) of the token-sized batch of ``order`` (longest first) that begins at ``start``.

        At most :meth:`_batch_rows` rows; closed early where the next item would pad more than
        ``pad_tolerance`` of its row, unless the batch is still under ``min_batch_tokens``.
        """
        longest = int(lengths[order[start]])
        end = min(len(order), start + self._batch_rows(longest))
        floor = min(self.min_batch_tokens.get(self.device.type, 4096), self.batch_size * self.tokens_per_row)
        shortest_kept = longest * (1.0 - self.pad_tolerance)
        for k in range(start + 1, end):
            if lengths[order[k]] < shortest_kept and (k - start) * longest >= floor:
                return k
        return end

    def _packed_batch_end(self, order: np.ndarray, lengths: Sequence[int] | np.ndarray, start: int) -> int:
        """End (exclusive) of the packed batch that begins at ``start``: ``batch_size * tokens_per_row`` real tokens."""
        budget, used, end = self.batch_size * self.tokens_per_row, 0, start
        while end < len(order) and (end == start or used + int(lengths[order[end]]) <= budget):
            used += int(lengths[order[end]])
            end += 1
        return end

    def _each_batch(self, order: Sequence[int] | np.ndarray, step: Callable[[np.ndarray], None], *, desc: str,
                    lengths: Sequence[int] | np.ndarray | None = None, packed: bool = False) -> None:
        """Call ``step(indices)`` on successive batches of ``order``; on out-of-memory, halve the batch and retry.

        ``step`` must write its results by index (so a retried batch overwrites nothing it should keep).
        The smaller batch size is kept for the rest of the run and reported by :meth:`describe`
        (``batch_size_used``, ``oom_retries``). With ``lengths`` (tokens of each item, ``order`` longest
        first) batches are sized by tokens: ``batch_size * tokens_per_row`` tokens, padding included, and
        cut where padding would grow (:meth:`_batch_end`); with ``packed`` too, a batch holds up to that
        many real tokens (``step`` packs them into rows with :meth:`_pack`, so there is no padding to limit).
        """
        order = np.asarray(order, dtype=np.int64)
        bar = progress_bar(total=len(order), desc=f"{self.name}: {desc}", unit="item",
                           disable=not self.progress or len(order) < 3 * self.batch_size)
        start, most = 0, len(order)  # most: items per batch, halved at each out-of-memory error
        try:
            while start < len(order):
                if lengths is None:
                    end = start + self.batch_size
                elif packed:
                    end = self._packed_batch_end(order, lengths, start)
                else:
                    end = self._batch_end(order, lengths, start)
                idx = order[start:min(end, start + most)]
                try:
                    step(idx)
                except Exception as exc:  # noqa: BLE001  (only out-of-memory is retried; the rest is re-raised)
                    if not _is_out_of_memory(exc) or len(idx) <= 1:
                        raise
                    del exc
                    _free_memory(self.device)
                    most = max(1, len(idx) // 2)  # the retry is strictly smaller than what failed
                    self.batch_size = max(1, min(self.batch_size, most) // 2 if lengths is not None else most)
                    self.oom_retries += 1
                    continue
                start += len(idx)
                bar.update(len(idx))
        finally:
            bar.close()

    def _pad(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token id lists into ``input_ids`` and ``attention_mask`` on the device."""
        length = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(sequences), length), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[row, : len(seq)] = 1
        return self._to_device(ids), self._to_device(mask)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Copy a host tensor to the input device (pinned and asynchronous on CUDA)."""
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _long(self, values: Sequence[int]) -> torch.Tensor:
        """An index tensor on the input device."""
        return self._to_device(torch.as_tensor(list(values), dtype=torch.long))

    #: Row length (tokens) of packed batches, by device type; on a device not listed, batches are padded.
    #: Several sequences share a row, each attending only to itself, so no matrix product runs on padding.
    pack_row_tokens: ClassVar[dict[str, int]] = {"cpu": 64}
    #: Whether a token attends only to earlier tokens (packed rows then get block-diagonal causal masks).
    causal_attention: ClassVar[bool] = False

    def _pack(self, sequences: Sequence[Sequence[int]], tails: Sequence[Sequence[Sequence[int]]] | None = None, *,
              one_row: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """Pack sequences (longest first) into rows of about ``pack_row_tokens`` tokens (:meth:`_fit_rows`).

        With ``tails`` (causal models), ``tails[k]`` are continuations of ``sequences[k]`` placed after it
        in the same row: each tail sees the whole of its sequence and its own earlier tokens, not the
        other tails, and its positions continue the sequence's. So one pass scores every continuation
        of a shared beginning, which is run once (the same result as a shared key/value cache).
        ``one_row`` puts everything in a single row (the check in :meth:`_packing_works`).

        Returns ``input_ids`` (rows, length), an additive 4D attention mask (rows, 1, length, length) that
        lets each token see only its own sequence (and only earlier tokens when ``causal_attention``),
        ``position_ids`` restarting at 0 for each sequence, and each sequence's ``(row, offset)``; its
        tails follow it in order.
        """
        tails = tails if tails is not None else [[] for _ in sequences]
        fill, places = self._fit_rows([len(s) + sum(len(t) for t in ts) for s, ts in zip(sequences, tails)],
                                      one_row=one_row)
        n_rows, length = len(fill), max(fill)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((n_rows, length), pad, dtype=torch.long)
        positions = torch.zeros((n_rows, length), dtype=torch.long)
        segment = torch.full((n_rows, length), -1, dtype=torch.long)
        branch = torch.zeros((n_rows, length), dtype=torch.long)
        for k, (seq, (row, at)) in enumerate(zip(sequences, places)):
            end = at + len(seq)
            ids[row, at:end] = torch.as_tensor(list(seq), dtype=torch.long)
            positions[row, at:end] = torch.arange(len(seq))
            for j, tail in enumerate(tails[k], start=1):
                ids[row, end:end + len(tail)] = torch.as_tensor(list(tail), dtype=torch.long)
                positions[row, end:end + len(tail)] = torch.arange(len(seq), len(seq) + len(tail))
                branch[row, end:end + len(tail)] = j
                end += len(tail)
            segment[row, at:end] = k
        allowed = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
        allowed &= (branch[:, None, :] == 0) | (branch[:, None, :] == branch[:, :, None])
        if self.causal_attention:
            allowed &= torch.ones((length, length), dtype=torch.bool).tril()
        allowed |= torch.eye(length, dtype=torch.bool)  # padding attends to itself: no all-masked row, no NaN
        dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        mask = torch.zeros((n_rows, 1, length, length), dtype=dtype)
        mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
        return self._to_device(ids), self._to_device(mask), self._to_device(positions), places

    def _fit_rows(self, lengths: Sequence[int], *, one_row: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
        """First-fit rows for ``lengths`` (longest first): each row's fill and each item's ``(row, offset)``.

        Row capacities tried: ``pack_row_tokens`` and the multiples of the longest item up to twice that;
        kept is the one with the least work, padded tokens weighted by their attention cost
        (rows x length x (1 + length / (6 x hidden size))).
        """
        target = self.pack_row_tokens.get(self.device.type, 0)
        longest = max(lengths)
        caps = {max(target, longest)} | {longest * k for k in range(1, max(1, 2 * target // longest) + 1)}
        if one_row:
            caps = {sum(lengths)}
        hidden = int(getattr(self.model.config, "hidden_size", 0) or 768)
        best: tuple[float, list[int], list[tuple[int, int]]] | None = None
        for cap in sorted(caps):
            fill: list[int] = []
            places: list[tuple[int, int]] = []
            for n in lengths:
                row = next((r for r, used in enumerate(fill) if used + n <= cap), len(fill))
                if row == len(fill):
                    fill.append(0)
                places.append((row, fill[row]))
                fill[row] += n
            width = max(fill)
            cost = len(fill) * width * (1 + width / (6 * hidden))
            if best is None or cost < best[0]:
                best = (cost, fill, places)
        assert best is not None
        return best[1], best[2]

    def _packing_works(self, sample: Sequence[Sequence[int]]) -> bool:
        """Whether packed rows (:meth:`_pack`) give this model's own per-sequence results; checked once.

        Two sample sequences go through the model packed into one row and each on its own; packing is
        used only if every hidden state (or logit) agrees. Models that ignore ``position_ids`` or 4D
        attention masks (or number positions from the padding token) fail the check and keep padded
        batches, and so do models with sliding-window or chunked attention (a packed 4D mask would give
        them full attention). Never on devices without a ``pack_row_tokens`` entry.
        """
        if self.device.type not in self.pack_row_tokens:
            return False
        if "_packs" in self.__dict__:
            return self.__dict__["_packs"]
        if _windowed_attention(self.model.config):  # one mask cannot express a window per layer
            self.__dict__["_packs"] = False
            return False
        if len(sample) < 2:
            return False
        pair = [list(sample[0])[:48], list(sample[-1])[:48]]
        ids, mask = self._pad(pair[:1])
        split = self._head_split(ids, mask)  # settled on a plain 2D mask before any packed call
        run = split[0] if split is not None else self.model

        def states(**inputs: Any) -> torch.Tensor:
            out = run(**inputs)
            return (out[0] if split is not None else out.logits)[0].float()

        ok = True
        try:
            with torch.inference_mode():
                p_ids, p_mask, p_pos, places = self._pack(pair, one_row=True)
                joint = states(input_ids=p_ids[:1], attention_mask=p_mask[:1], position_ids=p_pos[:1])
                for seq, (_, at) in zip(pair, places):
                    alone = states(input_ids=self._long(seq)[None], attention_mask=self._long([1] * len(seq))[None])
                    ok = ok and bool(torch.allclose(joint[at:at + len(seq)], alone, atol=1e-4, rtol=1e-3))
        except Exception:  # noqa: BLE001  (a model that rejects the packed inputs keeps padded batches)
            ok = False
        self.__dict__["_packs"] = ok
        return ok

    def _layout(self, sequences: Sequence[Sequence[int]], picks: Sequence[tuple[int, int]], *, packed: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Model inputs for a batch and where ``picks`` (sequence k, token t) sit in them.

        Returns ``(input_ids, attention_mask, rows, cols, extra)``; ``extra`` holds the ``position_ids``
        of packed rows (:meth:`_pack`) and is empty for padded ones (:meth:`_pad`).
        """
        if packed:
            ids, mask, positions, places = self._pack(sequences)
            return (ids, mask, self._long([places[k][0] for k, _ in picks]),
                    self._long([places[k][1] + t for k, t in picks]), {"position_ids": positions})
        ids, mask = self._pad(sequences)
        return ids, mask, self._long([k for k, _ in picks]), self._long([t for _, t in picks]), {}

    def _length_order(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Indices sorting sequences longest first, so each batch pads little."""
        return np.argsort([-len(s) for s in sequences], kind="stable")


def _windowed_attention(config: Any) -> bool:
    """Whether a model limits how far back its attention reaches (sliding windows, chunks, mixed layers)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text, "sliding_window", None) if getattr(text, "use_sliding_window", True) else None
    kinds = getattr(text, "layer_types", None) or []
    return bool(window) or bool(getattr(text, "attention_chunk_size", None)) or any(
        k != "full_attention" for k in kinds)


def _split_flat(done: Sequence[tuple[np.ndarray, torch.Tensor]], sizes: Sequence[int]) -> list[np.ndarray]:
    """Reassemble per-item arrays from batches of concatenated values (``done``: item indices, values).

    One device-to-host copy for the whole call; ``sizes[i]`` is how many values item ``i`` has.
    """
    flat = torch.cat([v for _, v in done]).cpu().numpy().astype(np.float64) if done else np.zeros(0)
    pieces: list[np.ndarray] = [np.zeros(0)] * len(sizes)
    at = 0
    for idx, values in done:
        for i in idx:
            pieces[i] = flat[at:at + sizes[i]]
            at += sizes[i]
    return pieces


def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out-of-memory, or the CPU allocator failing to allocate (both raise RuntimeError subclasses)."""
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        phrase in text for phrase in ("out of memory", "can't allocate memory", "cannot allocate memory",
                                      "not enough memory", "bad_alloc"))


def _free_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
