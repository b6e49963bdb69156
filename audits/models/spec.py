"""What to load: the model kinds, :class:`ModelSpec` and :func:`detect_kind`.

Pure data (no model is touched here): the config reads a ``[models.<key>]`` table into a :class:`ModelSpec`
before anything loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["ModelKind", "DType", "MODEL_KINDS", "ModelSpec", "detect_kind"]

ModelKind = Literal["masked_lm", "causal_lm", "encoder", "classifier", "multiple_choice"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)


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
