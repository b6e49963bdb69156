"""Model adapters: one loader, one adapter per model kind, batched primitives.

Every capability reads models through these adapters, never through transformers directly, so that
batching, padding, device placement, dtype and safety rules live in one place.

>>> adapter = load_model(ModelSpec(id="builtin:minilm-l6"))      # doctest: +SKIP
>>> adapter.embed(["a nurse", "a doctor"]).shape                  # doctest: +SKIP
(2, 384)

Import from this package (``from raikit.audits.models import load_model``); its modules, one job each:

=============== ==========================================================================================
``spec``        what to load: ``ModelKind``, :class:`ModelSpec`, :func:`detect_kind`
``loading``     :func:`load_model` (hub ids, local folders, ``builtin:``, safetensors only) and :func:`wrap_model`
``devices``     device and dtype, accelerate ``device_map`` placement, the weights hash
``base``        :class:`ModelAdapter`: provenance, tokenising, embeddings, attention maps
``batching``    token-sized batches, the out-of-memory retry, padded, packed and tree rows (a mixin)
``heads``       the vocabulary head at scored positions only, blocked log-softmax, trimmed top layer (mixins)
``adapters``    :class:`EncoderAdapter`, :class:`MaskedLMAdapter`, :class:`ClassifierAdapter`,
                :class:`MultipleChoiceAdapter`
``causal``      :class:`CausalLMAdapter`: document-start token, shared-stem scoring, generation
=============== ==========================================================================================
"""
from __future__ import annotations

from raikit.audits.models.adapters import ClassifierAdapter, EncoderAdapter, MaskedLMAdapter, MultipleChoiceAdapter
from raikit.audits.models.base import AttentionMaps, ModelAdapter
from raikit.audits.models.causal import CausalLMAdapter, document_start  # noqa: F401  (importable here)
from raikit.audits.models.devices import _resolve_dtype, resolve_device  # noqa: F401  (a test reads _resolve_dtype)
from raikit.audits.models.loading import load_model, looks_like_path, wrap_model
from raikit.audits.models.spec import MODEL_KINDS, DType, ModelKind, ModelSpec, detect_kind  # noqa: F401

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
