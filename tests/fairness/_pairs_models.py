"""Tiny language models trained on synthetic corpora with planted (or no) gender-occupation associations.

Shared by the CrowS-Pairs, StereoSet and AUL tests; each model is trained once per test session
(a few seconds) and cached.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import random

import pandas as pd
import tiny
import torch

MALE = ["he", "father", "boy", "uncle"]
FEMALE = ["she", "mother", "girl", "aunt"]
MALE_JOBS = ["doctor", "engineer", "pilot", "lawyer"]
FEMALE_JOBS = ["nurse", "teacher", "dancer", "secretary"]
TEMPLATES = ["{s} is a {o} .", "{s} works as a {o} ."]
UNRELATED = ["banana", "window", "river", "pencil"]
FILLER = [f"the {u} is on the table ." for u in UNRELATED] + [f"a {u} is near the door ." for u in UNRELATED]


def corpus(kind: str) -> list[str]:
    """``planted``: men only with male-typed jobs, women only with female-typed jobs; ``balanced``: all."""
    out = []
    for template in TEMPLATES:
        for males, females in zip(MALE, FEMALE):
            jobs_m = MALE_JOBS if kind == "planted" else MALE_JOBS + FEMALE_JOBS
            jobs_f = FEMALE_JOBS if kind == "planted" else MALE_JOBS + FEMALE_JOBS
            out += [template.format(s=males, o=o) for o in jobs_m]
            out += [template.format(s=females, o=o) for o in jobs_f]
    reps = 2 if kind == "planted" else 1
    return out * reps + FILLER * 2


def vocabulary_corpus() -> list[str]:
    return corpus("balanced")


def crows_style_pairs() -> pd.DataFrame:
    """CrowS-Pairs-style minimal pairs: the subject is shared, sent_more has the job planted with it.

    The tiny models learn job -> subject far better than subject -> job, so the shared (scored) token
    is the subject, as in CrowS-Pairs items that vary the attribute rather than the group.
    """
    rows = []
    for k, (template, subject) in enumerate(itertools.product(TEMPLATES, MALE + FEMALE)):
        own, other = (MALE_JOBS, FEMALE_JOBS) if subject in MALE else (FEMALE_JOBS, MALE_JOBS)
        for j, (job, swap) in enumerate(zip(own, other)):
            rows.append({"sent_more": template.format(s=subject, o=job), "sent_less": template.format(s=subject, o=swap),
                         "stereo_antistereo": "antistereo" if (k + j) % 5 == 0 else "stereo",
                         "bias_type": "gender" if j % 2 else "occupation"})
    return pd.DataFrame(rows)


def stereoset_style_items() -> pd.DataFrame:
    """StereoSet-style intrasentence items: the target is a job, BLANK is the subject."""
    rows = []
    for i, (template, job, k) in enumerate(itertools.product(TEMPLATES, MALE_JOBS + FEMALE_JOBS, range(4))):
        stereo, anti = (MALE[k], FEMALE[k]) if job in MALE_JOBS else (FEMALE[k], MALE[k])
        fill = lambda s: template.format(s=s, o=job)  # noqa: E731
        rows.append({"type": "intrasentence", "target": job, "bias_type": "gender" if i % 2 else "profession",
                     "context": fill("BLANK"), "stereotype": fill(stereo), "anti-stereotype": fill(anti),
                     "unrelated": fill(UNRELATED[k])})
    return pd.DataFrame(rows)


def train_mlm_noisy(model, tok, sentences, *, epochs: int = 80, lr: float = 3e-3, batch_size: int = 16,
                    select_prob: float = 0.3, seed: int = 0):
    """BERT-style training where chosen tokens are masked (50%), replaced at random (25%) or kept (25%).

    Unlike ``tiny.train_mlm`` (mask only), the model also learns to predict visible tokens from their
    context, which AUL/AULA (scores of the unmasked sentence) need.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * -(-len(sentences) // batch_size)
    # linear decay to 0: the model settles instead of ending on the last batches' noise, so a balanced
    # corpus leaves no systematic lean
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
    special = set(tok.all_special_ids)
    normal = [i for i in range(len(tok)) if i not in special]
    model.train()
    data = list(sentences)
    for _ in range(epochs):
        rng.shuffle(data)
        for start in range(0, len(data), batch_size):
            enc = tok(data[start:start + batch_size], padding=True, return_tensors="pt")
            inputs, labels = enc["input_ids"].clone(), enc["input_ids"].clone()
            for row in range(inputs.shape[0]):
                cand = [i for i, t in enumerate(inputs[row].tolist()) if t not in special]
                chosen = [i for i in cand if rng.random() < select_prob] or [rng.choice(cand)]
                keep = torch.ones(inputs.shape[1], dtype=torch.bool)
                keep[chosen] = False
                labels[row, keep] = -100
                for i in chosen:
                    draw = rng.random()
                    if draw < 0.5:
                        inputs[row, i] = tok.mask_token_id
                    elif draw < 0.75:
                        inputs[row, i] = rng.choice(normal)
            loss = model(input_ids=inputs, attention_mask=enc["attention_mask"], labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            schedule.step()
    return model.eval()


@functools.lru_cache(maxsize=None)
def trained_mlm(kind: str):
    """A tiny BERT masked LM trained on ``corpus(kind)``, wrapped in its adapter."""
    from raikit.audits import wrap_model

    tok = tiny.word_tokenizer(vocabulary_corpus(), style="bert")
    assert tok.convert_tokens_to_ids("nurse") != tok.unk_token_id
    model = tiny.tiny_mlm(tok, initializer_range=0.2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = train_mlm_noisy(model, tok, corpus(kind))
    return wrap_model(model, tok, name=f"mlm-{kind}", device="cpu", progress=False)


@functools.lru_cache(maxsize=None)
def trained_causal(kind: str):
    """A tiny GPT-2 trained on ``corpus(kind)``, wrapped in its adapter."""
    from raikit.audits import wrap_model

    tok = tiny.word_tokenizer(vocabulary_corpus(), style="gpt")
    assert tok.convert_tokens_to_ids("nurse") != tok.unk_token_id
    model = tiny.train_causal(tiny.tiny_causal(tok, initializer_range=0.2), tok, corpus(kind), epochs=40,
                              batch_size=16)
    return wrap_model(model, tok, name=f"causal-{kind}", device="cpu", progress=False)


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread (tiny models are slower with more on a shared 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
