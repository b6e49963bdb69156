"""The one generation path of the fairness probes: greedy or seeded sampled completions, batched.

Every probe that reads text a causal LM writes (``fairness.generation``: BOLD and open-ended questions;
``fairness.honest`` in ``causal_mode = "sample"``) calls :func:`complete_prompts`, which calls
:meth:`raikit.audits.models.CausalLMAdapter.generate`: one ``model.generate`` per batch of prompts
(sorted by length, left padded, with the KV cache), never a loop over prompts.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from raikit.audits.errors import RaikitInputError

__all__ = ["Decoding", "DECODINGS", "CHAT_CHOICES", "complete_prompts", "use_chat"]

Decoding = Literal["greedy", "sample"]
DECODINGS: tuple[str, ...] = ("greedy", "sample")
CHAT_CHOICES: tuple[str, ...] = ("auto", "always", "never")


def use_chat(adapter: Any, choice: str, *, instruction: bool) -> bool:
    """Whether prompts go through the model's chat template.

    ``"auto"``: instructions (open-ended questions) do when the tokenizer has a chat template; text to
    continue (BOLD prompts, HONEST templates) never does. ``"always"``: both (an error without a template).
    ``"never"``: neither.
    """
    if choice not in CHAT_CHOICES:
        raise RaikitInputError(f"chat must be one of {', '.join(CHAT_CHOICES)}, got {choice!r}")
    if choice == "never":
        return False
    if choice == "always":
        return True
    return instruction and bool(getattr(adapter, "has_chat_template", False))


def complete_prompts(adapter: Any, prompts: Sequence[str], *, decoding: str, samples: int = 1,
                     max_new_tokens: int = 20, seed: int = 0, temperature: float = 1.0,
                     chat: bool = False) -> list[list[str]]:
    """Completions of each prompt by a causal LM: one greedy, or ``samples`` seeded samples.

    Parameters
    ----------
    adapter : CausalLMAdapter
    prompts : sequence of str
    decoding : {"greedy", "sample"}
        Greedy (deterministic, one completion per prompt) or ancestral sampling at ``temperature``
        (no top-k / top-p truncation), seeded by ``seed``.
    samples : int
        Completions per prompt when sampling.
    max_new_tokens : int
        Length limit of each completion, in tokens (a completion ends earlier at the end-of-sequence token).
    chat : bool
        Wrap each prompt in the model's chat template (see :func:`use_chat`).

    Returns
    -------
    list of list of str
        Per prompt, its completions (the new text only, special tokens removed).
    """
    if getattr(adapter, "kind", None) != "causal_lm":
        raise RaikitInputError(f"generation needs a causal_lm model; {getattr(adapter, 'name', '')!r} is "
                               f"{getattr(adapter, 'kind', None)!r}")
    if decoding not in DECODINGS:
        raise RaikitInputError(f"decoding must be 'greedy' or 'sample', got {decoding!r}")
    sampled = decoding == "sample"
    return adapter.generate(list(prompts), max_new_tokens=max_new_tokens, do_sample=sampled,
                            num_return_sequences=samples if sampled else 1, seed=seed, temperature=temperature,
                            chat=chat)
