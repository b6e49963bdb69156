"""Loading: hub ids, local folders and ``builtin:`` aliases, safetensors only, device placement.

:func:`load_model` reads a :class:`~raikit.audits.models.ModelSpec` (refusing pickle-only weights unless
``allow_pickle``, remote code unless ``trust_remote_code``, the network when offline) and hands the
loaded model to :func:`wrap_model`, which picks the adapter for its kind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from raikit.audits.errors import RaikitInputError
from raikit.audits.models.adapters import ClassifierAdapter, EncoderAdapter, MaskedLMAdapter, MultipleChoiceAdapter
from raikit.audits.models.base import ModelAdapter
from raikit.audits.models.causal import CausalLMAdapter
from raikit.audits.models.devices import _input_device, _max_memory, _resolve_dtype, resolve_device
from raikit.audits.models.spec import MODEL_KINDS, ModelKind, ModelSpec, detect_kind

__all__ = ["load_model", "wrap_model", "looks_like_path"]


_ADAPTERS: dict[str, type[ModelAdapter]] = {
    "encoder": EncoderAdapter,
    "masked_lm": MaskedLMAdapter,
    "causal_lm": CausalLMAdapter,
    "classifier": ClassifierAdapter,
    "multiple_choice": MultipleChoiceAdapter,
}


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
