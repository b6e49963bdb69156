"""The causal LM adapter: the document-start token, log-likelihoods, shared-stem scoring, generation.

A context scored with several continuations (a sentence's options, a question's answers) runs once:
its key/value cache is shared (:meth:`CausalLMAdapter._shared_stem_log_probs`), or, where packing works,
it is laid out once in a tree row with its continuations after it
(:meth:`CausalLMAdapter._packed_stem_log_probs`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from raikit.audits.errors import RaikitInputError
from raikit.audits.models.base import ModelAdapter, _check_texts
from raikit.audits.models.batching import _split_flat
from raikit.audits.models.heads import _take
from raikit.audits.models.spec import ModelKind

__all__ = ["CausalLMAdapter", "document_start"]


_CHAT_MARKERS = ("im_start", "start_header_id", "start_of_turn", "<|user|>", "<|system|>", "[INST]")


def document_start(tokenizer: Any, choice: str = "auto", *, name: str = "") -> tuple[int, str]:
    """The token id a causal LM conditions each sentence on, and the rule that chose it.

    See :attr:`ModelSpec.start_token`. bias-bench and StereoSet condition GPT-style models on the document
    separator ``<|endoftext|>``; an instruct model's BOS is a chat-turn opener, not a document start.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if choice == "bos" or choice == "eos":
        tid = bos if choice == "bos" else eos
        if tid is None:
            raise RaikitInputError(f"model {name!r}: start_token = {choice!r} but the tokenizer has no "
                                   f"{choice.upper()} token")
        return int(tid), choice
    if choice != "auto":
        tid = tokenizer.convert_tokens_to_ids(choice)
        if tid is None or tid == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(tid) != choice:
            raise RaikitInputError(f"model {name!r}: start_token {choice!r} is not a token of the vocabulary "
                                   "(use auto, bos, eos or a token)")
        return int(tid), "configured token"
    bos_token = tokenizer.bos_token
    if bos is not None and not any(m in str(bos_token) for m in _CHAT_MARKERS):
        return int(bos), "BOS"
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return int(vocab["<|endoftext|>"]), ("document separator <|endoftext|> (BOS is a chat marker)"
                                              if bos is not None else "document separator <|endoftext|>")
    if eos is not None:
        return int(eos), "EOS" + (" (BOS is a chat marker)" if bos is not None else "")
    if bos is not None:
        return int(bos), "BOS (a chat marker; the tokenizer has no other)"
    raise RaikitInputError(f"model {name!r}: the tokenizer has neither a BOS nor an EOS token")


class CausalLMAdapter(ModelAdapter):
    """A causal (decoder-only) language model: sentence log-likelihood, candidate scoring, generation."""

    kind: ClassVar[ModelKind] = "causal_lm"
    causal_attention: ClassVar[bool] = True

    def __init__(self, model: Any, tokenizer: Any, *, start_token: str = "auto", **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        self.prefix_id, self.start_token_rule = document_start(tokenizer, start_token, name=self.name)
        self.start_token: str = str(tokenizer.convert_ids_to_tokens(self.prefix_id))

    def describe(self) -> dict[str, Any]:
        """As :meth:`ModelAdapter.describe`, plus the document-start token every sentence is conditioned on."""
        return {**super().describe(), "start_token": self.start_token, "start_token_rule": self.start_token_rule}

    @torch.inference_mode()
    def _continuation_log_probs(self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
                                desc: str) -> list[np.ndarray]:
        """Log p of each continuation token given its prefix, one pass per (prefix + continuation).

        Token-sized, length-sorted batches; the vocabulary head and the log-normaliser are computed only
        at the positions that predict a continuation token; results stay on the device until one copy at
        the end.
        """
        seqs = [list(p) + list(c) for p, c in zip(prefixes, continuations)]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        order = self._length_order(seqs)
        starts = [len(p) - 1 for p in prefixes]
        done: list[tuple[np.ndarray, torch.Tensor]] = []
        packed = self._packing_works([seqs[order[0]], seqs[order[-1]]]) if seqs else False

        def step(idx: np.ndarray) -> None:
            picks = [(r, t) for r, i in enumerate(idx) for t in range(starts[i], len(seqs[i]) - 1)]
            targets = [seqs[i][t + 1] for i in idx for t in range(starts[i], len(seqs[i]) - 1)]
            ids, mask, rows, cols, extra = self._layout([seqs[i] for i in idx], picks, packed=packed)
            done.append((idx, self._scored_log_probs(ids, mask, rows, cols, self._long(targets), **extra)))

        self._each_batch(order, step, desc=desc, lengths=lengths, packed=packed)
        return _split_flat(done, [len(s) - 1 - st for s, st in zip(seqs, starts)])

    @torch.inference_mode()
    def _shared_stem_log_probs(self, stems: Sequence[Sequence[int]], tails: Sequence[Sequence[Sequence[int]]], *,
                               score_stem: bool, desc: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """Log-probabilities of several continuations (``tails[g]``) of one stem, the stem run once.

        The stem goes through the model once per group and its key/value cache is shared by every tail
        (selected once per tail; right-padded stems leave masked holes; tail positions continue each
        stem's own length), so a context scored with three options costs one context pass, not three.
        The head runs at scored positions only.

        Returns
        -------
        (list of ndarray, list of list of ndarray)
            Per stem, log p of its tokens 1.. given the earlier ones (empty unless ``score_stem``); per
            group and tail, log p of the tail's tokens given the stem and the earlier tail tokens.
        """
        if any(len(s) < 1 for s in stems) or any(len(t) < 1 for ts in tails for t in ts):
            raise ValueError("every stem and every tail needs at least one token")
        live = [g for g in range(len(stems)) if tails[g]]
        if len(live) < len(stems):  # a stem without continuations: nothing of it is asked for
            stem_lp, tail_lp = self._shared_stem_log_probs([stems[g] for g in live], [tails[g] for g in live],
                                                           score_stem=score_stem, desc=desc) if live else ([], [])
            stems_out: list[np.ndarray] = [np.zeros(0) for _ in stems]
            tails_out: list[list[np.ndarray]] = [[] for _ in stems]
            for k, g in enumerate(live):
                stems_out[g], tails_out[g] = stem_lp[k], tail_lp[k]
            return stems_out, tails_out
        sample = [list(stems[g]) + list(tails[g][0]) for g in (0, len(stems) - 1)] if stems else []
        if self._packing_works(sample):
            return self._packed_stem_log_probs(stems, tails, score_stem=score_stem, desc=desc)
        # a group costs about (stem + longest tail) tokens per tail
        cost = np.array([(len(s) + max((len(t) for t in ts), default=0)) * max(1, len(ts))
                         for s, ts in zip(stems, tails)], dtype=np.int64)
        order = np.argsort(-cost, kind="stable")
        stem_done: list[tuple[np.ndarray, torch.Tensor]] = []
        tail_done: list[tuple[np.ndarray, torch.Tensor]] = []
        tail_index = np.cumsum([0] + [len(ts) for ts in tails])

        def step(idx: np.ndarray) -> None:
            ids, mask = self._pad([stems[g] for g in idx])
            body, head = self._head_split(ids, mask) or (self.model, None)
            out = body(input_ids=ids, attention_mask=mask, use_cache=True)
            hidden = out[0] if head is not None else out.logits
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            stem_len = [len(stems[g]) for g in idx]
            owner = [r for r, g in enumerate(idx) for _ in tails[g]]
            flat_tails = [t for g in idx for t in tails[g]]
            owner_dev = self._long(owner)
            cache.batch_select_indices(torch.as_tensor(owner, dtype=torch.long))  # host index: layers may sit on several devices
            t_ids, t_mask = self._pad(flat_tails)
            offsets = torch.as_tensor([stem_len[r] for r in owner], dtype=torch.long)
            positions = self._to_device(offsets[:, None] + torch.arange(t_ids.shape[1])[None, :])
            t_out = body(input_ids=t_ids, attention_mask=torch.cat([mask[owner_dev], t_mask], dim=1),
                         position_ids=positions, use_cache=False, **{_cache_keyword(body): cache})
            t_hidden = t_out[0] if head is not None else t_out.logits
            # scored vectors: stem positions (if asked); each tail's first token from its stem's last
            # position; each later tail token from the tail position before it
            picks_s = [(r, t) for r, g in enumerate(idx) for t in range(len(stems[g]) - 1)] if score_stem else []
            tgt_s = [stems[g][t + 1] for g in idx for t in range(len(stems[g]) - 1)] if score_stem else []
            first = [(r, stem_len[r] - 1) for r in owner]
            later = [(k, t) for k, tail in enumerate(flat_tails) for t in range(len(tail) - 1)]
            vecs = [_take(hidden, first)]
            if picks_s:
                vecs.insert(0, _take(hidden, picks_s))
            if later:
                vecs.append(_take(t_hidden, later).to(vecs[0].device))
            picked = torch.cat(vecs)
            targets = tgt_s + [tail[0] for tail in flat_tails] + [tail[t + 1] for k, t in later
                                                                   for tail in (flat_tails[k],)]
            logp = self._head_log_probs(picked, head, targets=self._long(targets))
            n_s, n_f = len(tgt_s), len(flat_tails)
            if score_stem:
                stem_done.append((idx, logp[:n_s]))
            later_lp = logp[n_s + n_f:]
            cuts = np.cumsum([0] + [len(t) - 1 for t in flat_tails])
            pieces = [torch.cat([logp[n_s + k:n_s + k + 1], later_lp[cuts[k]:cuts[k + 1]]]) for k in range(n_f)]
            tail_ids = np.concatenate([np.arange(tail_index[g], tail_index[g + 1]) for g in idx])
            tail_done.append((tail_ids, torch.cat(pieces)))

        self._each_batch(order, step, desc=desc, lengths=cost)
        stem_lp = (_split_flat(stem_done, [len(s) - 1 for s in stems]) if score_stem
                   else [np.zeros(0) for _ in stems])
        flat = _split_flat(tail_done, [len(t) for ts in tails for t in ts])
        return stem_lp, [flat[tail_index[g]:tail_index[g + 1]] for g in range(len(stems))]

    @torch.inference_mode()
    def _packed_stem_log_probs(self, stems: Sequence[Sequence[int]], tails: Sequence[Sequence[Sequence[int]]], *,
                               score_stem: bool, desc: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """:meth:`_shared_stem_log_probs` in packed rows: each stem once, its tails after it (:meth:`_pack`)."""
        sizes = np.array([len(s) + sum(len(t) for t in ts) for s, ts in zip(stems, tails)], dtype=np.int64)
        order = np.argsort(-sizes, kind="stable")
        tail_index = np.cumsum([0] + [len(ts) for ts in tails])
        stem_done: list[tuple[np.ndarray, torch.Tensor]] = []
        tail_done: list[tuple[np.ndarray, torch.Tensor]] = []

        def step(idx: np.ndarray) -> None:
            ids, mask, positions, places = self._pack([stems[g] for g in idx], [tails[g] for g in idx])
            picks: list[tuple[int, int]] = []
            targets: list[int] = []
            if score_stem:  # stem token t + 1 from stem position t
                for (row, at), g in zip(places, idx):
                    picks += [(row, at + t) for t in range(len(stems[g]) - 1)]
                    targets += list(stems[g][1:])
            n_stem = len(picks)
            for (row, at), g in zip(places, idx):  # a tail's first token from the stem's last position
                last = end = at + len(stems[g]) - 1
                end += 1
                for tail in tails[g]:
                    picks += [(row, last)] + [(row, end + t) for t in range(len(tail) - 1)]
                    targets += list(tail)
                    end += len(tail)
            rows = self._long([r for r, _ in picks])
            cols = self._long([c for _, c in picks])
            logp = self._scored_log_probs(ids, mask, rows, cols, self._long(targets), position_ids=positions)
            if score_stem:
                stem_done.append((idx, logp[:n_stem]))
            tail_ids = np.concatenate([np.arange(tail_index[g], tail_index[g + 1]) for g in idx])
            tail_done.append((tail_ids, logp[n_stem:]))

        self._each_batch(order, step, desc=desc, lengths=sizes, packed=True)
        stem_lp = (_split_flat(stem_done, [len(s) - 1 for s in stems]) if score_stem
                   else [np.zeros(0) for _ in stems])
        flat = _split_flat(tail_done, [len(t) for ts in tails for t in ts])
        return stem_lp, [flat[tail_index[g]:tail_index[g + 1]] for g in range(len(stems))]

    def shared_prefix_token_log_probs(self, groups: Sequence[Sequence[str]]) -> list[list[np.ndarray]]:
        """:meth:`token_log_probs` of texts that come in groups sharing a beginning (a sentence's options).

        The longest common token prefix of each group (the document-start token and at least one token
        of every text excepted) is run once and its key/value cache shared; the result equals
        :meth:`token_log_probs` of every text, float noise aside.

        Returns
        -------
        list of list of ndarray
            ``result[g][j]``: per-token log p of text ``j`` of group ``g``.
        """
        flat = [t for g in groups for t in g]
        encoded = [[self.prefix_id] + ids for ids in self.encode(flat, add_special_tokens=False)]
        stems, tails, at = [], [], 0
        for group in groups:
            seqs = encoded[at:at + len(group)]
            at += len(group)
            shortest = min((len(s) for s in seqs), default=1)
            common = 1
            while common < shortest - 1 and all(s[common] == seqs[0][common] for s in seqs):
                common += 1
            stems.append(seqs[0][:common] if seqs else [self.prefix_id])
            tails.append([s[common:] for s in seqs])
        if any(len(t) == 0 for ts in tails for t in ts):  # an empty text: nothing to share
            lps = self.token_log_probs(flat)
            cuts = np.cumsum([0] + [len(g) for g in groups])
            return [lps[cuts[g]:cuts[g + 1]] for g in range(len(groups))]
        stem_lp, tail_lp = self._shared_stem_log_probs(stems, tails, score_stem=True, desc="log-likelihood")
        return [[np.concatenate([stem_lp[g], lp]) for lp in tail_lp[g]] for g in range(len(stems))]

    def token_log_probs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token log p of each text, conditioned on the document-start token (:func:`document_start`)."""
        encoded = self.encode(texts, add_special_tokens=False)
        return self._continuation_log_probs([[self.prefix_id]] * len(encoded), encoded, "log-likelihood")

    def sentence_log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        """Sum over all tokens of log p(token | BOS, previous tokens)."""
        return np.array([lp.sum() for lp in self.token_log_probs(texts)])

    def continuation_log_likelihood(self, contexts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        """Sum of log p over the continuation's tokens given BOS + context.

        The continuation is tokenized on its own (join with a leading space where words are separate).
        """
        if len(contexts) != len(continuations):
            raise ValueError("contexts and continuations must have the same length")
        ctx = [[self.prefix_id] + ids for ids in self.encode(contexts, add_special_tokens=False)]
        cont = self.encode(continuations, add_special_tokens=False)
        if any(len(c) == 0 for c in cont):
            return np.array([lp.sum() for lp in self._continuation_log_probs(ctx, cont, "continuations")])
        # a context repeated with several continuations (a question's options) is run once, its cache shared
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, c in enumerate(ctx):
            groups.setdefault(tuple(c), []).append(i)
        keys = list(groups)
        _, tail_lp = self._shared_stem_log_probs([list(c) for c in keys], [[cont[i] for i in groups[c]] for c in keys],
                                                 score_stem=False, desc="continuations")
        out = np.zeros(len(ctx), dtype=np.float64)
        for key, lps in zip(keys, tail_lp):
            for i, lp in zip(groups[key], lps):
                out[i] = lp.sum()
        return out

    def prompt_ids(self, prompts: Sequence[str], *, chat: bool = False) -> list[list[int]]:
        """Token ids of each prompt as a stem for answer options.

        ``chat=False``: the document-start token, then the prompt (a base model's plain text). ``chat=True``:
        the prompt as one user turn through the tokenizer's chat template, with the assistant turn opened
        (``add_generation_prompt``), so options are scored as the assistant's answer (an instruct model).
        """
        _check_texts(prompts)
        if not chat:
            return [[self.prefix_id] + ids for ids in self.encode(prompts, add_special_tokens=False)]
        if not getattr(self.tokenizer, "chat_template", None):
            raise RaikitInputError(f"model {self.name!r}: the tokenizer has no chat template (use the base prompt)")
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                    add_generation_prompt=True) for p in prompts]
        return self.encode(texts, add_special_tokens=False)

    def option_token_log_probs(self, stems: Sequence[Sequence[int]], options: Sequence[Sequence[str]], *,
                               shared: bool = True) -> list[list[np.ndarray]]:
        """Per-token log p of each answer option of an item given the item's stem (:meth:`prompt_ids`).

        Each option is tokenised on its own (give it a leading space where words are separate). With
        ``shared`` (the default) the stem runs once per item and its key/value cache serves every option
        (:meth:`_shared_stem_log_probs`); ``shared=False`` runs stem + option as one sequence per option
        (the one-answer-per-pass baseline, same numbers up to float noise).

        Returns
        -------
        list of list of ndarray
            ``result[i][j]``: log p of each token of option ``j`` of item ``i``.
        """
        if len(stems) != len(options):
            raise ValueError("stems and options must have the same length")
        flat = [o for opts in options for o in opts]
        encoded = self.encode(flat, add_special_tokens=False) if flat else []
        if any(len(e) == 0 for e in encoded):
            raise RaikitInputError("an answer option is empty (no tokens)")
        cuts = np.cumsum([0] + [len(opts) for opts in options])
        tails = [encoded[cuts[i]:cuts[i + 1]] for i in range(len(options))]
        if shared:
            _, out = self._shared_stem_log_probs([list(s) for s in stems], tails, score_stem=False,
                                                 desc="answer options")
            return out
        prefixes = [list(stems[i]) for i in range(len(stems)) for _ in tails[i]]
        lps = self._continuation_log_probs(prefixes, [t for ts in tails for t in ts], "answer options")
        return [lps[cuts[i]:cuts[i + 1]] for i in range(len(options))]

    @torch.inference_mode()
    def next_token_top_k(self, prompts: Sequence[str], *, k: int = 10) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely next tokens after each prompt, with log-probabilities."""
        encoded = [[self.prefix_id] + ids for ids in self.encode(prompts, add_special_tokens=False)]
        order = self._length_order(encoded)
        out: list[Any] = [None] * len(encoded)

        def step(idx: np.ndarray) -> None:
            ids, mask = self._pad([encoded[i] for i in idx])
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            last = torch.as_tensor([len(encoded[i]) - 1 for i in idx], device=self.device)
            logp = torch.log_softmax(logits[torch.arange(len(idx), device=self.device), last].float(), -1)
            values, indices = logp.topk(k, dim=-1)
            for row, i in enumerate(idx):
                out[i] = [(self.tokenizer.decode([int(t)]), float(v))
                          for v, t in zip(values[row].tolist(), indices[row].tolist())]

        self._each_batch(order, step, desc="next token")
        return out

    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer carries a chat template (an instruct model's own prompt format)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def generation_inputs(self, prompts: Sequence[str], *, chat: bool = False) -> list[str]:
        """The exact text each prompt is generated from.

        ``chat``: the prompt is the user turn of the model's chat template, with the assistant turn opened
        (``add_generation_prompt``); otherwise the prompt follows the document-start token, as in scoring.
        """
        if chat:
            if not self.has_chat_template:
                raise RaikitInputError(f"model {self.name!r} has no chat template (set chat = \"never\")")
            return [str(self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                           add_generation_prompt=True)) for p in prompts]
        start = self.tokenizer.decode([self.prefix_id])
        return [start + p for p in prompts]

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 20, num_return_sequences: int = 1,
                 do_sample: bool = False, seed: int = 0, temperature: float = 1.0, chat: bool = False,
                 one_at_a_time: bool = False) -> list[list[str]]:
        """Continuations of each prompt (the new text only): batched, longest first, left padded, KV cache.

        One ``model.generate`` call per batch (the KV cache is on by default), prompts sorted by token
        length so a batch pads little; ``chat`` wraps each prompt in the chat template
        (:meth:`generation_inputs`). Sampling is seeded once per call (``seed``), so sampled text is
        reproducible for the same prompts and batch size. ``one_at_a_time`` generates prompt by prompt
        (the baseline of ``bench/``; greedy text is the same up to floating-point ties).

        Returns
        -------
        list of list of str
            ``num_return_sequences`` continuations per prompt.
        """
        _check_texts(prompts)
        torch.manual_seed(seed)
        texts_in = self.generation_inputs(prompts, chat=chat)
        encoded = self.encode(texts_in, add_special_tokens=False)
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            results: list[list[str]] = [[] for _ in prompts]
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

            def step(idx: np.ndarray) -> None:
                length = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), length), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), length), dtype=torch.long)
                for row, i in enumerate(idx):  # left padding: every prompt ends at the last column
                    ids[row, length - len(encoded[i]):] = torch.as_tensor(encoded[i], dtype=torch.long)
                    mask[row, length - len(encoded[i]):] = 1
                gen = self.model.generate(input_ids=self._to_device(ids), attention_mask=self._to_device(mask),
                                          max_new_tokens=max_new_tokens, do_sample=do_sample,
                                          num_return_sequences=num_return_sequences,
                                          temperature=temperature if do_sample else None,
                                          top_p=None, top_k=None, use_cache=True, pad_token_id=pad)
                texts = self.tokenizer.batch_decode(gen[:, length:], skip_special_tokens=True)
                for row, i in enumerate(idx):
                    results[i] = texts[row * num_return_sequences: (row + 1) * num_return_sequences]

            if one_at_a_time:
                for i in range(len(prompts)):
                    step(np.asarray([i]))
            else:
                self._each_batch(self._length_order(encoded), step, desc="generating")
            return results
        finally:
            self.tokenizer.padding_side = side


def _cache_keyword(module: Any) -> str:
    """The keyword a model's forward takes its key/value cache by (``cache`` since transformers 5.x)."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
