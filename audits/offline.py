"""Offline mode: every switch of the HuggingFace libraries, set before they can touch the network.

``huggingface_hub``, ``transformers``, ``datasets`` and ``evaluate`` read their offline switches from the
environment when they are imported, so :func:`set_offline` must run first: the CLI calls it for
``--offline``, ``HF_HUB_OFFLINE=1`` and ``[run] offline = true`` before it imports anything that imports
them. For callers of the Python API that have imported them already, it also flips the module constants
that exist at that point. This module imports nothing heavy.
"""
from __future__ import annotations

import os
import sys

__all__ = ["OFFLINE_VARIABLES", "set_offline", "offline_from_env"]

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
