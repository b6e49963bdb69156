"""Model adapters: one loader, one adapter per model kind, batched primitives.

Every capability reads models through these adapters, never through transformers directly, so that
batching, padding, device placement, dtype and safety rules live in one place.

>>> adapter = load_model(ModelSpec(id="builtin:minilm-l6"))      # doctest: +SKIP
>>> adapter.embed(["a nurse", "a doctor"]).shape                  # doctest: +SKIP
(2, 384)
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import torch

from raikit.audits.errors import RaikitInputError
from raikit.audits.progress import progress_bar

__all__ = [
    "ModelKind",
    "ModelSpec",
    "ModelAdapter",
    "EncoderAdapter",
    "MaskedLMAdapter",
    "CausalLMAdapter",
    "ClassifierAdapter",
    "MultipleChoiceAdapter",
    "AttentionMaps",
    "load_model",
    "wrap_model",
    "resolve_device",
    "detect_kind",
    "looks_like_path",
]

ModelKind = Literal["masked_lm", "causal_lm", "encoder", "classifier", "multiple_choice"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ModelSpec:
    """How to load one model.

    Parameters
    ----------
    id : str
        A HuggingFace hub id, a local folder, or a built-in alias such as ``builtin:minilm-l6``.
    kind : {"masked_lm", "causal_lm", "encoder", "classifier", "multiple_choice"}, optional
        The adapter to build (``multiple_choice``: an ``AutoModelForMultipleChoice`` head); detected
        from the model config's architecture when omitted.
    dtype : {"auto", "float32", "float16", "bfloat16"}
        "auto" is float32 on every device (on CUDA with TF32 matmuls allowed): bias scores compare the
        log-likelihoods of nearly equal sentences to 3 decimals, and in bfloat16 those comparisons
        change with the batch a sentence lands in. bfloat16/float16 are an explicit opt-in; their drift
        against float32 is stated in ``docs/definitions.md``.
    batch_size : int
        Sequences per forward pass.
    max_length : int
        Longer inputs are truncated to this many tokens.
    allow_pickle : bool
        Load pickle ``.bin`` weights; off by default (safetensors only).
    trust_remote_code : bool
        Run model code shipped with the checkpoint; off by default.
    revision : str, optional
        Hub revision (branch, tag or commit) for hub ids.
    start_token : str
        Causal LMs: the token every sentence is conditioned on. "auto": the tokenizer's BOS token unless
        it is a chat-turn marker (``<|im_start|>`` and the like, as in instruct models), then the document
        separator ``<|endoftext|>`` when the vocabulary has it, else EOS (GPT-2 style). "bos", "eos", or
        a literal token of the vocabulary. Recorded in the model provenance.
    device_map : str or dict, optional
        Spread the model over several devices with accelerate (``"auto"``, ``"balanced"``,
        ``"sequential"``, or a module -> device table), for models bigger than one GPU; ``device`` is then
        ignored and inputs go where the embeddings are. See ``docs/models.md``.
    max_memory : dict, optional
        With ``device_map``: the most each device may hold, e.g. ``{0 = "70GiB", 1 = "70GiB", cpu = "200GiB"}``
        (keys: GPU index or ``"cpu"``; values: bytes or a size string).
    offload_folder : str, optional
        With ``device_map``: where weights that fit no device are kept on disk (loaded layer by layer).
    """

    id: str
    kind: ModelKind | None = None
    dtype: DType = "auto"
    batch_size: int = 32
    max_length: int = 512
    allow_pickle: bool = False
    trust_remote_code: bool = False
    revision: str | None = None
    start_token: str = "auto"
    device_map: str | dict[str, Any] | None = None
    max_memory: dict[str, Any] | None = None
    offload_folder: str | None = None

    def __post_init__(self) -> None:
        if self.device_map is None and (self.max_memory is not None or self.offload_folder is not None):
            raise ValueError("max_memory and offload_folder need device_map (e.g. device_map = \"auto\")")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` into a :class:`torch.device`.

    Raises
    ------
    RaikitInputError
        If CUDA is asked for but not available, or the name is not a device.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RaikitInputError(f"device {device!r} was asked for but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise RaikitInputError(f"unknown device {device!r}; use auto, cpu or cuda") from None


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # float32 storage and accumulation, TF32 matmul inputs
            torch.backends.cudnn.allow_tf32 = True
        return torch.float32
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise RaikitInputError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}") from None


def detect_kind(config: Any) -> ModelKind:
    """Guess the adapter kind from a transformers config's ``architectures`` list."""
    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith("ForMaskedLM"):
            return "masked_lm"
        if arch.endswith(("ForCausalLM", "LMHeadModel")):
            return "causal_lm"
        if arch.endswith("ForSequenceClassification"):
            return "classifier"
        if arch.endswith("ForMultipleChoice"):
            return "multiple_choice"
    return "encoder"


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


class ModelAdapter:
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
            digest = hashlib.sha256()
            offloaded = _offloaded_weights(self.model)
            for key, tensor in sorted(self.model.state_dict().items()):
                if tensor.device.type == "meta":  # kept on disk or in host memory by accelerate
                    tensor = offloaded[key]
                digest.update(key.encode())
                digest.update(str(tensor.dtype).encode())
                data = tensor.detach().to("cpu").contiguous()
                digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
            self._sha256 = digest.hexdigest()
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

    def _length_order(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Indices sorting sequences longest first, so each batch pads little."""
        return np.argsort([-len(s) for s in sequences], kind="stable")

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


class EncoderAdapter(ModelAdapter):
    """A plain encoder (no task head): sentence embeddings and attention maps."""

    kind: ClassVar[ModelKind] = "encoder"


class MaskedLMAdapter(ModelAdapter):
    """A masked language model: masked-token log-probabilities, pseudo-log-likelihood, fill-mask."""

    kind: ClassVar[ModelKind] = "masked_lm"

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        if tokenizer.mask_token_id is None:
            raise RaikitInputError(f"model {self.name!r}: the tokenizer has no mask token, so it is not a masked LM")
        self.mask_token: str = tokenizer.mask_token
        self.mask_token_id: int = int(tokenizer.mask_token_id)
        self._special = set(tokenizer.all_special_ids)

    def _vectors_at(self, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                    **forward: Any) -> tuple[torch.Tensor, Any]:
        """As :meth:`ModelAdapter._vectors_at`, the top encoder layer run only at the scored positions.

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

    def content_positions(self, token_ids: Sequence[int]) -> list[int]:
        """Positions of the non-special tokens of one encoded sentence."""
        return [i for i, t in enumerate(token_ids) if t not in self._special]

    @torch.inference_mode()
    def masked_token_log_probs(
        self, token_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], *, desc: str = "masked scoring"
    ) -> list[np.ndarray]:
        """Log-probability of each original token when that single position is masked.

        All masked variants of all sentences go through the model in shared, length-sorted batches.

        Parameters
        ----------
        token_ids : sequence of sequence of int
            Encoded sentences (special tokens included).
        positions : sequence of sequence of int
            For each sentence, the positions to mask one at a time.

        Returns
        -------
        list of ndarray
            ``result[i][j]`` is ``log p(token_ids[i][positions[i][j]] | sentence i with that position masked)``.
        """
        if len(token_ids) != len(positions):
            raise ValueError("token_ids and positions must have the same length")
        variants: list[tuple[int, int, int]] = [(i, j, p) for i, pos in enumerate(positions) for j, p in enumerate(pos)]
        lengths = np.array([len(token_ids[i]) for i, _, _ in variants], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        done: list[tuple[np.ndarray, torch.Tensor]] = []
        packed = self._packing_works([token_ids[i] for i, _, _ in (variants[:1] + variants[-1:])])

        def step(ks: np.ndarray) -> None:
            batch = [variants[k] for k in ks]
            seqs = []
            for i, _, p in batch:
                seq = list(token_ids[i])
                seq[p] = self.mask_token_id
                seqs.append(seq)
            ids, mask, rows, cols, extra = self._layout(seqs, [(k, p) for k, (_, _, p) in enumerate(batch)],
                                                        packed=packed)
            targets = self._long([token_ids[i][p] for i, _, p in batch])
            done.append((ks, self._scored_log_probs(ids, mask, rows, cols, targets, **extra)))

        self._each_batch(order, step, desc=desc, lengths=lengths, packed=packed)
        flat = np.zeros(len(variants), dtype=np.float64)
        if done:  # one device-to-host copy for the whole call
            flat[np.concatenate([k for k, _ in done])] = torch.cat([v for _, v in done]).cpu().numpy()
        bounds = np.cumsum([0] + [len(pos) for pos in positions])
        return [flat[bounds[i]:bounds[i + 1]].copy() for i in range(len(positions))]

    def pseudo_log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        """Pseudo-log-likelihood (Salazar et al. 2020): sum over tokens of log p(token | rest), masking each once."""
        encoded = self.encode(texts)
        scores = self.masked_token_log_probs(encoded, [self.content_positions(e) for e in encoded], desc="PLL")
        return np.array([s.sum() for s in scores])

    @torch.inference_mode()
    def unmasked_token_log_probs(self, token_ids: Sequence[Sequence[int]], *, with_attentions: bool = False
                                 ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Log p of every token given the whole unmasked sentence (AUL), optionally with attention.

        Returns
        -------
        list of (ndarray, ndarray or None)
            Per sentence: log-probabilities of all tokens (special tokens included) and, when asked,
            the attention weights averaged over layers and heads, shape (tokens, tokens).
        """
        order = self._length_order(token_ids)
        out: list[Any] = [None] * len(token_ids)

        def step(idx: np.ndarray) -> None:
            ids, mask = self._pad([token_ids[i] for i in idx])
            res = self.model(input_ids=ids, attention_mask=mask, output_attentions=with_attentions)
            logp = torch.log_softmax(res.logits.float(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
            att = torch.stack(res.attentions).float().mean(dim=(0, 2)) if with_attentions else None
            for row, i in enumerate(idx):
                n = len(token_ids[i])
                out[i] = (logp[row, :n].cpu().numpy().astype(np.float64),
                          None if att is None else att[row, :n, :n].cpu().numpy())

        with self._eager_attention(with_attentions):
            self._each_batch(order, step, desc="AUL")
        return out

    def _mask_positions(self, ids: Sequence[int]) -> list[int]:
        return [i for i, t in enumerate(ids) if t == self.mask_token_id]

    def candidate_ids(self, candidates: Sequence[str]) -> list[list[int]]:
        """Token ids of each candidate as it would appear after a space."""
        return [list(self.tokenizer(" " + c.strip(), add_special_tokens=False)["input_ids"]) for c in candidates]

    @torch.inference_mode()
    def _each_mask_logprobs(self, texts: Sequence[str], mask_index: Sequence[int],
                            consume: Callable[[np.ndarray, torch.Tensor], None], *, desc: str) -> None:
        """Call ``consume(indices, log_probs)`` per batch: float32 log-softmax over the vocabulary at the
        chosen mask of each text (shape (batch, vocab), on the device).

        The vocabulary head runs at the masks only, and nothing of shape (all texts, vocab) is ever held:
        callers keep the columns or top-k they need, so memory is bounded by one batch.
        """
        encoded = self.encode(texts)
        positions = []
        for text, ids, k in zip(texts, encoded, mask_index):
            masks = self._mask_positions(ids)
            if len(masks) <= k:
                raise RaikitInputError(f"text {text!r} has {len(masks)} mask token(s) {self.mask_token!r}; "
                                       f"mask number {k + 1} was asked for")
            positions.append(masks[k])
        order = self._length_order(encoded)
        packed = self._packing_works([encoded[order[0]], encoded[order[-1]]]) if encoded else False

        def step(idx: np.ndarray) -> None:
            ids, mask, rows, cols, extra = self._layout([encoded[i] for i in idx],
                                                        [(k, positions[i]) for k, i in enumerate(idx)], packed=packed)
            vectors, head = self._vectors_at(ids, mask, rows, cols, **extra)
            for k, logits in self._logit_blocks(vectors, head):  # fixed-size blocks: bounded, reusable memory
                consume(idx[k:k + len(logits)], torch.log_softmax(logits, dim=-1))

        self._each_batch(order, step, desc=desc, lengths=[len(e) for e in encoded], packed=packed)

    def fill_mask(self, texts: Sequence[str], candidates: Sequence[str], *,
                  mask_index: int | Sequence[int] = 0) -> np.ndarray:
        """Log-probability of each single-token candidate at a mask of each text.

        Parameters
        ----------
        texts : sequence of str
            Texts containing the tokenizer's mask token (``adapter.mask_token``).
        candidates : sequence of str
            Words to score; each must be one token in this vocabulary.
        mask_index : int or sequence of int
            Which mask of each text to score (0 = first), for texts with several masks.

        Returns
        -------
        ndarray, shape (n_texts, n_candidates)
        """
        ids = self.candidate_ids(candidates)
        multi = [c for c, i in zip(candidates, ids) if len(i) != 1]
        if multi:
            raise RaikitInputError(f"model {self.name!r}: fill-mask candidates must be single tokens; "
                                   f"these are not: {', '.join(multi[:5])}")
        k = [mask_index] * len(texts) if isinstance(mask_index, int) else list(mask_index)
        columns = self._long([i[0] for i in ids])
        done: list[tuple[np.ndarray, torch.Tensor]] = []
        self._each_mask_logprobs(texts, k, lambda idx, logp: done.append((idx, logp[:, columns])), desc="fill-mask")
        out = np.zeros((len(texts), len(candidates)), dtype=np.float64)
        if done:  # one device-to-host copy for the whole call
            out[np.concatenate([i for i, _ in done])] = torch.cat([v for _, v in done]).cpu().numpy()
        return out

    def top_k(self, texts: Sequence[str], *, k: int = 10, mask_index: int = 0) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely tokens at a mask of each text, with log-probabilities."""
        out: list[Any] = [None] * len(texts)

        def keep(idx: np.ndarray, logp: torch.Tensor) -> None:
            values, indices = logp.topk(k, dim=-1)
            for row, i in enumerate(idx):
                out[i] = [(self.tokenizer.decode([int(t)]).strip(), float(v))
                          for v, t in zip(values[row].tolist(), indices[row].tolist())]

        self._each_mask_logprobs(texts, [mask_index] * len(texts), keep, desc="top-k")
        return out


_CHAT_MARKERS = ("im_start", "start_header_id", "start_of_turn", "<|user|>", "<|system|>", "[INST]")


def document_start(tokenizer: Any, choice: str = "auto", *, name: str = "") -> tuple[int, str]:
    """The token id a causal LM conditions each sentence on, and the rule that chose it.

    See :attr:`ModelSpec.start_token`. bias-bench and StereoSet condition GPT-style models on the document
    separator ``<|endoftext|>``; an instruct model's BOS is a chat-turn opener, not a document start.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if choice == "bos" or choice == "eos":
        tid = bos if choice == "bos" else eos
        if tid is None:
            raise RaikitInputError(f"model {name!r}: start_token = {choice!r} but the tokenizer has no "
                                   f"{choice.upper()} token")
        return int(tid), choice
    if choice != "auto":
        tid = tokenizer.convert_tokens_to_ids(choice)
        if tid is None or tid == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(tid) != choice:
            raise RaikitInputError(f"model {name!r}: start_token {choice!r} is not a token of the vocabulary "
                                   "(use auto, bos, eos or a token)")
        return int(tid), "configured token"
    bos_token = tokenizer.bos_token
    if bos is not None and not any(m in str(bos_token) for m in _CHAT_MARKERS):
        return int(bos), "BOS"
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return int(vocab["<|endoftext|>"]), ("document separator <|endoftext|> (BOS is a chat marker)"
                                              if bos is not None else "document separator <|endoftext|>")
    if eos is not None:
        return int(eos), "EOS" + (" (BOS is a chat marker)" if bos is not None else "")
    if bos is not None:
        return int(bos), "BOS (a chat marker; the tokenizer has no other)"
    raise RaikitInputError(f"model {name!r}: the tokenizer has neither a BOS nor an EOS token")


class CausalLMAdapter(ModelAdapter):
    """A causal (decoder-only) language model: sentence log-likelihood, candidate scoring, generation."""

    kind: ClassVar[ModelKind] = "causal_lm"
    causal_attention: ClassVar[bool] = True

    def __init__(self, model: Any, tokenizer: Any, *, start_token: str = "auto", **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        self.prefix_id, self.start_token_rule = document_start(tokenizer, start_token, name=self.name)
        self.start_token: str = str(tokenizer.convert_ids_to_tokens(self.prefix_id))

    def describe(self) -> dict[str, Any]:
        """As :meth:`ModelAdapter.describe`, plus the document-start token every sentence is conditioned on."""
        return {**super().describe(), "start_token": self.start_token, "start_token_rule": self.start_token_rule}

    @torch.inference_mode()
    def _continuation_log_probs(self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
                                desc: str) -> list[np.ndarray]:
        """Log p of each continuation token given its prefix, one pass per (prefix + continuation).

        Token-sized, length-sorted batches; the vocabulary head and the log-normaliser are computed only
        at the positions that predict a continuation token; results stay on the device until one copy at
        the end.
        """
        seqs = [list(p) + list(c) for p, c in zip(prefixes, continuations)]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        order = self._length_order(seqs)
        starts = [len(p) - 1 for p in prefixes]
        done: list[tuple[np.ndarray, torch.Tensor]] = []
        packed = self._packing_works([seqs[order[0]], seqs[order[-1]]]) if seqs else False

        def step(idx: np.ndarray) -> None:
            picks = [(r, t) for r, i in enumerate(idx) for t in range(starts[i], len(seqs[i]) - 1)]
            targets = [seqs[i][t + 1] for i in idx for t in range(starts[i], len(seqs[i]) - 1)]
            ids, mask, rows, cols, extra = self._layout([seqs[i] for i in idx], picks, packed=packed)
            done.append((idx, self._scored_log_probs(ids, mask, rows, cols, self._long(targets), **extra)))

        self._each_batch(order, step, desc=desc, lengths=lengths, packed=packed)
        return _split_flat(done, [len(s) - 1 - st for s, st in zip(seqs, starts)])

    @torch.inference_mode()
    def _shared_stem_log_probs(self, stems: Sequence[Sequence[int]], tails: Sequence[Sequence[Sequence[int]]], *,
                               score_stem: bool, desc: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """Log-probabilities of several continuations (``tails[g]``) of one stem, the stem run once.

        The stem goes through the model once per group and its key/value cache is shared by every tail
        (selected once per tail; right-padded stems leave masked holes; tail positions continue each
        stem's own length), so a context scored with three options costs one context pass, not three.
        The head runs at scored positions only.

        Returns
        -------
        (list of ndarray, list of list of ndarray)
            Per stem, log p of its tokens 1.. given the earlier ones (empty unless ``score_stem``); per
            group and tail, log p of the tail's tokens given the stem and the earlier tail tokens.
        """
        if any(len(s) < 1 for s in stems) or any(len(t) < 1 for ts in tails for t in ts):
            raise ValueError("every stem and every tail needs at least one token")
        live = [g for g in range(len(stems)) if tails[g]]
        if len(live) < len(stems):  # a stem without continuations: nothing of it is asked for
            stem_lp, tail_lp = self._shared_stem_log_probs([stems[g] for g in live], [tails[g] for g in live],
                                                           score_stem=score_stem, desc=desc) if live else ([], [])
            stems_out: list[np.ndarray] = [np.zeros(0) for _ in stems]
            tails_out: list[list[np.ndarray]] = [[] for _ in stems]
            for k, g in enumerate(live):
                stems_out[g], tails_out[g] = stem_lp[k], tail_lp[k]
            return stems_out, tails_out
        sample = [list(stems[g]) + list(tails[g][0]) for g in (0, len(stems) - 1)] if stems else []
        if self._packing_works(sample):
            return self._packed_stem_log_probs(stems, tails, score_stem=score_stem, desc=desc)
        # a group costs about (stem + longest tail) tokens per tail
        cost = np.array([(len(s) + max((len(t) for t in ts), default=0)) * max(1, len(ts))
                         for s, ts in zip(stems, tails)], dtype=np.int64)
        order = np.argsort(-cost, kind="stable")
        stem_done: list[tuple[np.ndarray, torch.Tensor]] = []
        tail_done: list[tuple[np.ndarray, torch.Tensor]] = []
        tail_index = np.cumsum([0] + [len(ts) for ts in tails])

        def step(idx: np.ndarray) -> None:
            ids, mask = self._pad([stems[g] for g in idx])
            body, head = self._head_split(ids, mask) or (self.model, None)
            out = body(input_ids=ids, attention_mask=mask, use_cache=True)
            hidden = out[0] if head is not None else out.logits
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            stem_len = [len(stems[g]) for g in idx]
            owner = [r for r, g in enumerate(idx) for _ in tails[g]]
            flat_tails = [t for g in idx for t in tails[g]]
            owner_dev = self._long(owner)
            cache.batch_select_indices(torch.as_tensor(owner, dtype=torch.long))  # host index: layers may sit on several devices
            t_ids, t_mask = self._pad(flat_tails)
            offsets = torch.as_tensor([stem_len[r] for r in owner], dtype=torch.long)
            positions = self._to_device(offsets[:, None] + torch.arange(t_ids.shape[1])[None, :])
            t_out = body(input_ids=t_ids, attention_mask=torch.cat([mask[owner_dev], t_mask], dim=1),
                         position_ids=positions, use_cache=False, **{_cache_keyword(body): cache})
            t_hidden = t_out[0] if head is not None else t_out.logits
            # scored vectors: stem positions (if asked); each tail's first token from its stem's last
            # position; each later tail token from the tail position before it
            picks_s = [(r, t) for r, g in enumerate(idx) for t in range(len(stems[g]) - 1)] if score_stem else []
            tgt_s = [stems[g][t + 1] for g in idx for t in range(len(stems[g]) - 1)] if score_stem else []
            first = [(r, stem_len[r] - 1) for r in owner]
            later = [(k, t) for k, tail in enumerate(flat_tails) for t in range(len(tail) - 1)]
            vecs = [_take(hidden, first)]
            if picks_s:
                vecs.insert(0, _take(hidden, picks_s))
            if later:
                vecs.append(_take(t_hidden, later).to(vecs[0].device))
            picked = torch.cat(vecs)
            targets = tgt_s + [tail[0] for tail in flat_tails] + [tail[t + 1] for k, t in later
                                                                   for tail in (flat_tails[k],)]
            logp = self._head_log_probs(picked, head, targets=self._long(targets))
            n_s, n_f = len(tgt_s), len(flat_tails)
            if score_stem:
                stem_done.append((idx, logp[:n_s]))
            later_lp = logp[n_s + n_f:]
            cuts = np.cumsum([0] + [len(t) - 1 for t in flat_tails])
            pieces = [torch.cat([logp[n_s + k:n_s + k + 1], later_lp[cuts[k]:cuts[k + 1]]]) for k in range(n_f)]
            tail_ids = np.concatenate([np.arange(tail_index[g], tail_index[g + 1]) for g in idx])
            tail_done.append((tail_ids, torch.cat(pieces)))

        self._each_batch(order, step, desc=desc, lengths=cost)
        stem_lp = (_split_flat(stem_done, [len(s) - 1 for s in stems]) if score_stem
                   else [np.zeros(0) for _ in stems])
        flat = _split_flat(tail_done, [len(t) for ts in tails for t in ts])
        return stem_lp, [flat[tail_index[g]:tail_index[g + 1]] for g in range(len(stems))]

    @torch.inference_mode()
    def _packed_stem_log_probs(self, stems: Sequence[Sequence[int]], tails: Sequence[Sequence[Sequence[int]]], *,
                               score_stem: bool, desc: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """:meth:`_shared_stem_log_probs` in packed rows: each stem once, its tails after it (:meth:`_pack`)."""
        sizes = np.array([len(s) + sum(len(t) for t in ts) for s, ts in zip(stems, tails)], dtype=np.int64)
        order = np.argsort(-sizes, kind="stable")
        tail_index = np.cumsum([0] + [len(ts) for ts in tails])
        stem_done: list[tuple[np.ndarray, torch.Tensor]] = []
        tail_done: list[tuple[np.ndarray, torch.Tensor]] = []

        def step(idx: np.ndarray) -> None:
            ids, mask, positions, places = self._pack([stems[g] for g in idx], [tails[g] for g in idx])
            picks: list[tuple[int, int]] = []
            targets: list[int] = []
            if score_stem:  # stem token t + 1 from stem position t
                for (row, at), g in zip(places, idx):
                    picks += [(row, at + t) for t in range(len(stems[g]) - 1)]
                    targets += list(stems[g][1:])
            n_stem = len(picks)
            for (row, at), g in zip(places, idx):  # a tail's first token from the stem's last position
                last = end = at + len(stems[g]) - 1
                end += 1
                for tail in tails[g]:
                    picks += [(row, last)] + [(row, end + t) for t in range(len(tail) - 1)]
                    targets += list(tail)
                    end += len(tail)
            rows = self._long([r for r, _ in picks])
            cols = self._long([c for _, c in picks])
            logp = self._scored_log_probs(ids, mask, rows, cols, self._long(targets), position_ids=positions)
            if score_stem:
                stem_done.append((idx, logp[:n_stem]))
            tail_ids = np.concatenate([np.arange(tail_index[g], tail_index[g + 1]) for g in idx])
            tail_done.append((tail_ids, logp[n_stem:]))

        self._each_batch(order, step, desc=desc, lengths=sizes, packed=True)
        stem_lp = (_split_flat(stem_done, [len(s) - 1 for s in stems]) if score_stem
                   else [np.zeros(0) for _ in stems])
        flat = _split_flat(tail_done, [len(t) for ts in tails for t in ts])
        return stem_lp, [flat[tail_index[g]:tail_index[g + 1]] for g in range(len(stems))]

    def shared_prefix_token_log_probs(self, groups: Sequence[Sequence[str]]) -> list[list[np.ndarray]]:
        """:meth:`token_log_probs` of texts that come in groups sharing a beginning (a sentence's options).

        The longest common token prefix of each group (the document-start token and at least one token
        of every text excepted) is run once and its key/value cache shared; the result equals
        :meth:`token_log_probs` of every text, float noise aside.

        Returns
        -------
        list of list of ndarray
            ``result[g][j]``: per-token log p of text ``j`` of group ``g``.
        """
        flat = [t for g in groups for t in g]
        encoded = [[self.prefix_id] + ids for ids in self.encode(flat, add_special_tokens=False)]
        stems, tails, at = [], [], 0
        for group in groups:
            seqs = encoded[at:at + len(group)]
            at += len(group)
            shortest = min((len(s) for s in seqs), default=1)
            common = 1
            while common < shortest - 1 and all(s[common] == seqs[0][common] for s in seqs):
                common += 1
            stems.append(seqs[0][:common] if seqs else [self.prefix_id])
            tails.append([s[common:] for s in seqs])
        if any(len(t) == 0 for ts in tails for t in ts):  # an empty text: nothing to share
            lps = self.token_log_probs(flat)
            cuts = np.cumsum([0] + [len(g) for g in groups])
            return [lps[cuts[g]:cuts[g + 1]] for g in range(len(groups))]
        stem_lp, tail_lp = self._shared_stem_log_probs(stems, tails, score_stem=True, desc="log-likelihood")
        return [[np.concatenate([stem_lp[g], lp]) for lp in tail_lp[g]] for g in range(len(stems))]

    def token_log_probs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token log p of each text, conditioned on the document-start token (:func:`document_start`)."""
        encoded = self.encode(texts, add_special_tokens=False)
        return self._continuation_log_probs([[self.prefix_id]] * len(encoded), encoded, "log-likelihood")

    def sentence_log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        """Sum over all tokens of log p(token | BOS, previous tokens)."""
        return np.array([lp.sum() for lp in self.token_log_probs(texts)])

    def continuation_log_likelihood(self, contexts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        """Sum of log p over the continuation's tokens given BOS + context.

        The continuation is tokenized on its own (join with a leading space where words are separate).
        """
        if len(contexts) != len(continuations):
            raise ValueError("contexts and continuations must have the same length")
        ctx = [[self.prefix_id] + ids for ids in self.encode(contexts, add_special_tokens=False)]
        cont = self.encode(continuations, add_special_tokens=False)
        if any(len(c) == 0 for c in cont):
            return np.array([lp.sum() for lp in self._continuation_log_probs(ctx, cont, "continuations")])
        # a context repeated with several continuations (a question's options) is run once, its cache shared
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, c in enumerate(ctx):
            groups.setdefault(tuple(c), []).append(i)
        keys = list(groups)
        _, tail_lp = self._shared_stem_log_probs([list(c) for c in keys], [[cont[i] for i in groups[c]] for c in keys],
                                                 score_stem=False, desc="continuations")
        out = np.zeros(len(ctx), dtype=np.float64)
        for key, lps in zip(keys, tail_lp):
            for i, lp in zip(groups[key], lps):
                out[i] = lp.sum()
        return out

    def prompt_ids(self, prompts: Sequence[str], *, chat: bool = False) -> list[list[int]]:
        """Token ids of each prompt as a stem for answer options.

        ``chat=False``: the document-start token, then the prompt (a base model's plain text). ``chat=True``:
        the prompt as one user turn through the tokenizer's chat template, with the assistant turn opened
        (``add_generation_prompt``), so options are scored as the assistant's answer (an instruct model).
        """
        _check_texts(prompts)
        if not chat:
            return [[self.prefix_id] + ids for ids in self.encode(prompts, add_special_tokens=False)]
        if not getattr(self.tokenizer, "chat_template", None):
            raise RaikitInputError(f"model {self.name!r}: the tokenizer has no chat template (use the base prompt)")
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                    add_generation_prompt=True) for p in prompts]
        return self.encode(texts, add_special_tokens=False)

    def option_token_log_probs(self, stems: Sequence[Sequence[int]], options: Sequence[Sequence[str]], *,
                               shared: bool = True) -> list[list[np.ndarray]]:
        """Per-token log p of each answer option of an item given the item's stem (:meth:`prompt_ids`).

        Each option is tokenised on its own (give it a leading space where words are separate). With
        ``shared`` (the default) the stem runs once per item and its key/value cache serves every option
        (:meth:`_shared_stem_log_probs`); ``shared=False`` runs stem + option as one sequence per option
        (the one-answer-per-pass baseline, same numbers up to float noise).

        Returns
        -------
        list of list of ndarray
            ``result[i][j]``: log p of each token of option ``j`` of item ``i``.
        """
        if len(stems) != len(options):
            raise ValueError("stems and options must have the same length")
        flat = [o for opts in options for o in opts]
        encoded = self.encode(flat, add_special_tokens=False) if flat else []
        if any(len(e) == 0 for e in encoded):
            raise RaikitInputError("an answer option is empty (no tokens)")
        cuts = np.cumsum([0] + [len(opts) for opts in options])
        tails = [encoded[cuts[i]:cuts[i + 1]] for i in range(len(options))]
        if shared:
            _, out = self._shared_stem_log_probs([list(s) for s in stems], tails, score_stem=False,
                                                 desc="answer options")
            return out
        prefixes = [list(stems[i]) for i in range(len(stems)) for _ in tails[i]]
        lps = self._continuation_log_probs(prefixes, [t for ts in tails for t in ts], "answer options")
        return [lps[cuts[i]:cuts[i + 1]] for i in range(len(options))]

    @torch.inference_mode()
    def next_token_top_k(self, prompts: Sequence[str], *, k: int = 10) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely next tokens after each prompt, with log-probabilities."""
        encoded = [[self.prefix_id] + ids for ids in self.encode(prompts, add_special_tokens=False)]
        order = self._length_order(encoded)
        out: list[Any] = [None] * len(encoded)

        def step(idx: np.ndarray) -> None:
            ids, mask = self._pad([encoded[i] for i in idx])
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            last = torch.as_tensor([len(encoded[i]) - 1 for i in idx], device=self.device)
            logp = torch.log_softmax(logits[torch.arange(len(idx), device=self.device), last].float(), -1)
            values, indices = logp.topk(k, dim=-1)
            for row, i in enumerate(idx):
                out[i] = [(self.tokenizer.decode([int(t)]), float(v))
                          for v, t in zip(values[row].tolist(), indices[row].tolist())]

        self._each_batch(order, step, desc="next token")
        return out

    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer carries a chat template (an instruct model's own prompt format)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def generation_inputs(self, prompts: Sequence[str], *, chat: bool = False) -> list[str]:
        """The exact text each prompt is generated from.

        ``chat``: the prompt is the user turn of the model's chat template, with the assistant turn opened
        (``add_generation_prompt``); otherwise the prompt follows the document-start token, as in scoring.
        """
        if chat:
            if not self.has_chat_template:
                raise RaikitInputError(f"model {self.name!r} has no chat template (set chat = \"never\")")
            return [str(self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                           add_generation_prompt=True)) for p in prompts]
        start = self.tokenizer.decode([self.prefix_id])
        return [start + p for p in prompts]

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 20, num_return_sequences: int = 1,
                 do_sample: bool = False, seed: int = 0, temperature: float = 1.0, chat: bool = False,
                 one_at_a_time: bool = False) -> list[list[str]]:
        """Continuations of each prompt (the new text only): batched, longest first, left padded, KV cache.

        One ``model.generate`` call per batch (the KV cache is on by default), prompts sorted by token
        length so a batch pads little; ``chat`` wraps each prompt in the chat template
        (:meth:`generation_inputs`). Sampling is seeded once per call (``seed``), so sampled text is
        reproducible for the same prompts and batch size. ``one_at_a_time`` generates prompt by prompt
        (the baseline of ``bench/``; greedy text is the same up to floating-point ties).

        Returns
        -------
        list of list of str
            ``num_return_sequences`` continuations per prompt.
        """
        _check_texts(prompts)
        torch.manual_seed(seed)
        texts_in = self.generation_inputs(prompts, chat=chat)
        encoded = self.encode(texts_in, add_special_tokens=False)
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            results: list[list[str]] = [[] for _ in prompts]
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

            def step(idx: np.ndarray) -> None:
                length = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), length), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), length), dtype=torch.long)
                for row, i in enumerate(idx):  # left padding: every prompt ends at the last column
                    ids[row, length - len(encoded[i]):] = torch.as_tensor(encoded[i], dtype=torch.long)
                    mask[row, length - len(encoded[i]):] = 1
                gen = self.model.generate(input_ids=self._to_device(ids), attention_mask=self._to_device(mask),
                                          max_new_tokens=max_new_tokens, do_sample=do_sample,
                                          num_return_sequences=num_return_sequences,
                                          temperature=temperature if do_sample else None,
                                          top_p=None, top_k=None, use_cache=True, pad_token_id=pad)
                texts = self.tokenizer.batch_decode(gen[:, length:], skip_special_tokens=True)
                for row, i in enumerate(idx):
                    results[i] = texts[row * num_return_sequences: (row + 1) * num_return_sequences]

            if one_at_a_time:
                for i in range(len(prompts)):
                    step(np.asarray([i]))
            else:
                self._each_batch(self._length_order(encoded), step, desc="generating")
            return results
        finally:
            self.tokenizer.padding_side = side


class ClassifierAdapter(ModelAdapter):
    """A sequence classifier: probabilities of every class, cached per text.

    The output follows the head's ``config.problem_type``:

    * single-label (the default with two or more labels): softmax over the labels;
    * ``multi_label_classification``: a sigmoid per label (the columns need not sum to 1; the
      "predicted" class is the most probable label);
    * one output and no problem type (a binary head with one logit): ``p = sigmoid(logit)``, exposed as
      two classes ``[1 - p, p]`` labelled ``not <label>`` and ``<label>``, so flips, explanations and
      per-group rates work as for any binary classifier;
    * ``regression``: refused (there are no class probabilities to explain or compare).
    """

    kind: ClassVar[ModelKind] = "classifier"

    def __init__(self, model: Any, tokenizer: Any, *, cache_size: int = 200_000, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        id2label = getattr(model.config, "id2label", None) or {}
        n = int(model.config.num_labels)
        problem = getattr(model.config, "problem_type", None)
        if problem == "regression":
            raise RaikitInputError(f"model {self.name!r} has a regression head (problem_type 'regression'); raikit's "
                                   "classifier probes and explanations need class probabilities")
        labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(n)]
        if problem == "multi_label_classification":
            self.output: str = "sigmoid per label (multi-label)"
        elif n == 1:
            self.output = "sigmoid of the single logit, as [1 - p, p]"
            labels = [f"not {labels[0]}", labels[0]]
        else:
            self.output = "softmax over the labels"
        self.labels: list[str] = labels
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities from the head's logits, by the head's problem type (see the class docstring)."""
        logits = logits.float()
        if self.output.startswith("sigmoid per label"):
            return torch.sigmoid(logits)
        if logits.shape[-1] == 1:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], dim=-1)
        return torch.softmax(logits, -1)

    def describe(self) -> dict[str, Any]:
        """As :meth:`ModelAdapter.describe`, plus how probabilities are read from the head."""
        return {**super().describe(), "output": self.output}

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for each text (softmax, or sigmoid for multi-label and one-logit heads).

        Repeated texts, within a call or across calls, go to the model once.

        Returns
        -------
        ndarray, shape (n_texts, n_classes), float64
        """
        texts = [str(t) for t in texts]
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            encoded = self.encode(missing)
            order = self._length_order(encoded)

            def step(idx: np.ndarray) -> None:
                ids, mask = self._pad([encoded[i] for i in idx])
                probs = self._probabilities(self.model(input_ids=ids, attention_mask=mask).logits).cpu().numpy()
                for row, i in enumerate(idx):
                    self._cache[missing[i]] = probs[row].astype(np.float64)

            self._each_batch(order, step, desc="classifying")
        result = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, len(self.labels)))
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def clear_cache(self) -> None:
        """Forget cached probabilities and attention maps (after changing the weights, or to time a cold run)."""
        self._cache.clear()
        self.__dict__.pop("_attention_cache", None)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Index of the most probable class for each text."""
        return self.predict_proba(texts).argmax(axis=1)


class MultipleChoiceAdapter(ModelAdapter):
    """A multiple-choice model (``AutoModelForMultipleChoice``, e.g. a RoBERTa fine-tuned on RACE).

    Each item is encoded as one (first, second) text pair per choice, all choices of an item in one row
    group; the head gives one logit per choice.
    """

    kind: ClassVar[ModelKind] = "multiple_choice"

    @torch.inference_mode()
    def choice_logits(self, firsts: Sequence[str], choices: Sequence[Sequence[str]]) -> np.ndarray:
        """The head's logit for each choice of each item.

        Parameters
        ----------
        firsts : sequence of str
            The first segment of every pair of an item (RACE form: the passage).
        choices : sequence of sequence of str
            The second segment per choice (RACE form: question and answer); every item has as many.

        Returns
        -------
        ndarray, shape (n_items, n_choices), float64
        """
        _check_texts(firsts)
        if len(firsts) != len(choices):
            raise ValueError("firsts and choices must have the same length")
        n_choices = {len(c) for c in choices}
        if len(n_choices) > 1:
            raise ValueError("every item needs the same number of choices")
        k = n_choices.pop() if n_choices else 0
        out = np.zeros((len(firsts), k), dtype=np.float64)
        if not len(firsts) or not k:
            return out
        pairs = self.tokenizer([f for f in firsts for _ in range(k)], [c for cs in choices for c in cs],
                               truncation="only_first", max_length=self.max_length)
        ids = [list(x) for x in pairs["input_ids"]]
        types = [list(x) for x in pairs["token_type_ids"]] if "token_type_ids" in pairs else None
        longest = [max(len(ids[i * k + j]) for j in range(k)) for i in range(len(firsts))]
        order = np.argsort([-n for n in longest], kind="stable")

        def step(idx: np.ndarray) -> None:
            rows = [i * k + j for i in idx for j in range(k)]
            input_ids, mask = self._pad([ids[r] for r in rows])
            extra = {}
            if types is not None:
                tt = torch.zeros_like(input_ids)
                for n, r in enumerate(rows):
                    tt[n, :len(types[r])] = torch.as_tensor(types[r])
                extra["token_type_ids"] = tt
            shape = (len(idx), k, input_ids.shape[1])
            logits = self.model(input_ids=input_ids.view(shape), attention_mask=mask.view(shape),
                                **{key: v.view(shape) for key, v in extra.items()}).logits
            out[idx] = logits.float().cpu().numpy().reshape(len(idx), k)

        self._each_batch(order, step, desc="multiple choice")
        return out


_ADAPTERS: dict[str, type[ModelAdapter]] = {
    "encoder": EncoderAdapter,
    "masked_lm": MaskedLMAdapter,
    "causal_lm": CausalLMAdapter,
    "classifier": ClassifierAdapter,
    "multiple_choice": MultipleChoiceAdapter,
}


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


def _windowed_attention(config: Any) -> bool:
    """Whether a model limits how far back its attention reaches (sliding windows, chunks, mixed layers)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text, "sliding_window", None) if getattr(text, "use_sliding_window", True) else None
    kinds = getattr(text, "layer_types", None) or []
    return bool(window) or bool(getattr(text, "attention_chunk_size", None)) or any(
        k != "full_attention" for k in kinds)


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


def _input_device(model: Any) -> torch.device:
    """Where inputs of a model dispatched by accelerate go: the device of its input embeddings."""
    placed = model.hf_device_map
    embeddings = model.get_input_embeddings()
    names = [n for n, m in model.named_modules() if m is embeddings]
    where = None
    for name in names:
        parts = name.split(".")
        for k in range(len(parts), -1, -1):  # the embeddings' own entry, or the nearest enclosing one
            key = ".".join(parts[:k])
            if key in placed:
                where = placed[key]
                break
        if where is not None:
            break
    if where is None:
        where = next(iter(placed.values()))
    if isinstance(where, int):
        return torch.device("cuda", where)
    return torch.device("cpu") if where in ("cpu", "disk") else torch.device(where)


def _cache_keyword(module: Any) -> str:
    """The keyword a model's forward takes its key/value cache by (``cache`` since transformers 5.x)."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


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


def _offloaded_weights(model: Any) -> Any:
    """Name -> tensor of the weights accelerate offloaded (to disk or host memory), read one at a time.

    Each offloading hook holds the model's whole weights map under a prefix; its ``dataset`` is keyed by
    full parameter names. Empty when nothing was offloaded.
    """
    for module in model.modules():
        hooks = [getattr(module, "_hf_hook", None)]
        hooks += list(getattr(hooks[0], "hooks", []) or [])
        for hook in hooks:
            weights = getattr(hook, "weights_map", None)
            if weights is not None:
                return getattr(weights, "dataset", weights)
    return {}


def _take(tensor: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``tensor[rows, cols]`` for (row, col) pairs, the index built on the tensor's own device."""
    index = torch.as_tensor(list(pairs), dtype=torch.long).reshape(-1, 2)
    if tensor.device.type == "cuda":
        index = index.pin_memory().to(tensor.device, non_blocking=True)
    return tensor[index[:, 0], index[:, 1]]


def _max_memory(table: dict[str, Any] | None) -> dict[int | str, Any] | None:
    """A TOML ``max_memory`` table for accelerate: GPU indices as integers (TOML keys are strings)."""
    if table is None:
        return None
    return {int(k) if str(k).isdigit() else str(k): v for k, v in table.items()}


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


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise TypeError("pass a sequence of texts, not a single string")


def wrap_model(model: Any, tokenizer: Any, *, kind: ModelKind | None = None, name: str = "in-memory",
               device: str | torch.device = "auto", batch_size: int = 32, max_length: int = 512,
               progress: bool = True, metadata: dict[str, Any] | None = None,
               start_token: str = "auto") -> ModelAdapter:
    """Wrap an already loaded transformers model and tokenizer in the adapter for its kind.

    Parameters
    ----------
    model, tokenizer
        A ``PreTrainedModel`` and its tokenizer.
    kind : str, optional
        Detected from ``model.config.architectures`` (or the class name) when omitted.
    start_token : str
        Causal LMs only: see :attr:`ModelSpec.start_token`.
    """
    if kind is None:
        arch = getattr(model.config, "architectures", None) or [type(model).__name__]
        kind = detect_kind(type("Cfg", (), {"architectures": arch}))
    if kind not in _ADAPTERS:
        raise RaikitInputError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    if getattr(model, "hf_device_map", None):  # spread over devices by accelerate: leave it where it is
        dev = _input_device(model)
    else:
        dev = resolve_device(device)
        model = model.to(dev)
    extra = {"start_token": start_token} if kind == "causal_lm" else {}
    return _ADAPTERS[kind](model, tokenizer, name=name, device=dev, batch_size=batch_size,
                           max_length=max_length, progress=progress, metadata=metadata, **extra)


_AUTO_CLASSES = {
    "masked_lm": "AutoModelForMaskedLM",
    "causal_lm": "AutoModelForCausalLM",
    "classifier": "AutoModelForSequenceClassification",
    "encoder": "AutoModel",
    "multiple_choice": "AutoModelForMultipleChoice",
}


def looks_like_path(model_id: str) -> bool:
    """Whether a model id is written as a path, not a hub id.

    Paths: ``./x``, ``../x``, ``/x``, ``~/x``, ``C:\\x``, anything with a backslash, and ``a/b/c`` (a hub id
    is ``name`` or ``namespace/name``: at most one slash).
    """
    return model_id.startswith(("./", "../", "/", "~", ".\\", "..\\", "\\")) or model_id in (".", "..") or (
        len(model_id) > 2 and model_id[1] == ":" and model_id[2] in "/\\") or model_id.count("/") > 1 or (
        "\\" in model_id)


def _has_only_pickle_weights(path: Path) -> bool:
    files = {p.name for p in path.iterdir()} if path.is_dir() else set()
    has_safe = any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files)
    has_bin = any(f.endswith(".bin") or f.endswith(".bin.index.json") for f in files)
    return has_bin and not has_safe


def load_model(spec: ModelSpec | str, *, device: str | torch.device = "auto", offline: bool | None = None,
               progress: bool = True) -> ModelAdapter:
    """Load a model by hub id, local folder or built-in alias and return its adapter.

    Parameters
    ----------
    spec : ModelSpec or str
        What to load; a plain string is ``ModelSpec(id=spec)``.
    device : str
        "auto" (CUDA when present), "cpu" or "cuda".
    offline : bool, optional
        Never touch the network. Defaults to true when ``HF_HUB_OFFLINE=1``.
    progress : bool
        Show progress bars on long work.

    Raises
    ------
    RaikitInputError
        If the model cannot be found or loaded, is pickle-only without ``allow_pickle``, or its kind
        does not fit.
    """
    import transformers

    if isinstance(spec, str):
        spec = ModelSpec(id=spec)
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    dev = resolve_device(device)
    dtype = _resolve_dtype(spec.dtype, dev)
    metadata: dict[str, Any] = {}
    source: str = spec.id
    if spec.id.startswith("builtin:"):
        from raikit.audits.builtin import prepare_builtin

        path, metadata = prepare_builtin(spec.id, progress=progress)
        source = str(path)
    local = Path(source).expanduser()
    if not local.exists() and looks_like_path(spec.id):  # never send a mistyped folder to the hub (retries)
        raise RaikitInputError(f"model {spec.id!r}: no such folder ({local.resolve()})")
    if local.exists():
        source = str(local)
        if not spec.allow_pickle and _has_only_pickle_weights(local):
            raise RaikitInputError(f"model {spec.id!r}: only pickle (.bin) weights found; raikit loads safetensors "
                                   "only unless the model table sets allow_pickle = true")
    elif offline and "/" not in spec.id and not spec.id.startswith("builtin:"):
        raise RaikitInputError(f"model {spec.id!r}: no such folder, and offline mode cannot reach the hub")
    common: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code, "local_files_only": offline}
    if spec.revision:
        common["revision"] = spec.revision
    try:
        config = transformers.AutoConfig.from_pretrained(source, **common)
        kind = spec.kind or detect_kind(config)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **common)
        auto = getattr(transformers, _AUTO_CLASSES[kind])
        placement: dict[str, Any] = {}
        if spec.device_map is not None:
            placement = {"device_map": spec.device_map, "max_memory": _max_memory(spec.max_memory),
                         "offload_folder": spec.offload_folder}
        model = auto.from_pretrained(source, dtype=dtype, use_safetensors=None if spec.allow_pickle else True,
                                     **placement, **common)
    except RaikitInputError:
        raise
    except Exception as exc:  # noqa: BLE001  (truncated safetensors, refused pickle, bad config: all bad input)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, (OSError, ValueError, KeyError)):
            reason = f"{type(exc).__name__}: {reason}"
        where = "offline, not in the local cache" if offline and not local.exists() else reason
        raise RaikitInputError(f"model {spec.id!r}: could not be loaded ({where})") from exc
    return wrap_model(model, tokenizer, kind=kind, name=spec.id, device=dev, batch_size=spec.batch_size,
                      max_length=spec.max_length, progress=progress, metadata=metadata,
                      start_token=spec.start_token)
