"""Where a model runs and what its weights are: device and dtype, accelerate placement, the weights hash.

``device_map`` spreads a model over several devices with accelerate (``docs/models.md``); inputs then go
where its embeddings are (:func:`_input_device`), and weights accelerate offloaded to disk or host memory
are read back one at a time for the hash (:func:`weights_sha256`).
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch

from raikit.audits.errors import RaikitInputError

__all__ = ["resolve_device", "weights_sha256"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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


def weights_sha256(model: Any) -> str:
    """SHA-256 over every parameter and buffer (sorted by name, raw bytes), offloaded weights included."""
    digest = hashlib.sha256()
    offloaded = _offloaded_weights(model)
    for key, tensor in sorted(model.state_dict().items()):
        if tensor.device.type == "meta":  # kept on disk or in host memory by accelerate
            tensor = offloaded[key]
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        data = tensor.detach().to("cpu").contiguous()
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


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


def _max_memory(table: dict[str, Any] | None) -> dict[int | str, Any] | None:
    """A TOML ``max_memory`` table for accelerate: GPU indices as integers (TOML keys are strings)."""
    if table is None:
        return None
    return {int(k) if str(k).isdigit() else str(k): v for k, v in table.items()}


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
