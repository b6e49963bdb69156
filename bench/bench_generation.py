"""Batched generation against one prompt at a time (issue 24): the same greedy text, the time ratio.

Both paths call :meth:`raikit.audits.models.CausalLMAdapter.generate` on the same BOLD prompts with the
same settings: the baseline with ``one_at_a_time=True`` (one ``model.generate`` per prompt, what a
per-prompt loop does), raikit's path batched (prompts sorted by length, left padded, KV cache). At
temperature 0 (greedy) the texts must agree; the row gives the share of prompts whose text is identical
(floating-point ties between batched and unbatched logits may flip a token of a near-tied prompt).
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.bench_adapters import causal_lm, interleaved

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bold"
HEADER = ["| benchmark | prompts x new tokens | device | one at a time s | batched s | speed-up | identical greedy text |",
          "|---|---|---|---|---|---|---|"]


def bold_prompts(n: int) -> list[str]:
    """The first prompt of the first ``n`` pages of BOLD's race and gender files (real lengths), or fixed text."""
    out: list[str] = []
    for name in ("race_prompt.json", "gender_prompt.json"):
        path = DATA / name
        if path.exists():
            for pages in json.loads(path.read_text(encoding="utf-8")).values():
                out += [prompts[0] for prompts in pages.values() if prompts]
    if not out:
        out = [f"Person number {i} is an American actor whose " for i in range(n)]
    return out[::max(1, len(out) // n)][:n]


def bench_generate(device: str, *, quick: bool) -> str:
    adapter = causal_lm(device, quick=quick, batch_size=16)
    prompts = bold_prompts(8 if quick else 32)
    tokens = 8 if quick else 20

    def batched():
        return adapter.generate(prompts, max_new_tokens=tokens)

    def single():
        return adapter.generate(prompts, max_new_tokens=tokens, one_at_a_time=True)

    t_single, t_batched, out_single, out_batched = interleaved(single, batched, repeats=1 if quick else 2)
    same = sum(a == b for a, b in zip(out_single, out_batched))
    return (f"| greedy generation, {adapter.name} | {len(prompts)} x {tokens} | {device} | {t_single:.2f} | "
            f"{t_batched:.2f} | {t_single / t_batched:.1f}x | {same} of {len(prompts)} |")


def run(*, device: str = "cpu", quick: bool = False) -> list[str]:
    """Markdown rows: batched generation against one prompt at a time."""
    return HEADER + [bench_generate(device, quick=quick)]
