"""The kind-specific adapters: encoder, masked LM, classifier, multiple choice (causal LMs: ``causal.py``).

Each is the public methods of one kind of model; batching and scoring at chosen positions come from
:class:`~raikit.audits.models.ModelAdapter` and its mixins.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from raikit.audits.errors import RaikitInputError
from raikit.audits.models.base import ModelAdapter, _check_texts
from raikit.audits.models.heads import TrimmedTopLayer
from raikit.audits.models.spec import ModelKind

__all__ = ["EncoderAdapter", "MaskedLMAdapter", "ClassifierAdapter", "MultipleChoiceAdapter"]


class EncoderAdapter(ModelAdapter):
    """A plain encoder (no task head): sentence embeddings and attention maps."""

    kind: ClassVar[ModelKind] = "encoder"


class MaskedLMAdapter(TrimmedTopLayer, ModelAdapter):
    """A masked language model: masked-token log-probabilities, pseudo-log-likelihood, fill-mask."""

    kind: ClassVar[ModelKind] = "masked_lm"

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        if tokenizer.mask_token_id is None:
            raise RaikitInputError(f"model {self.name!r}: the tokenizer has no mask token, so it is not a masked LM")
        self.mask_token: str = tokenizer.mask_token
        self.mask_token_id: int = int(tokenizer.mask_token_id)
        self._special = set(tokenizer.all_special_ids)

    def content_positions(self, token_ids: Sequence[int]) -> list[int]:
        """Positions of the non-special tokens of one encoded sentence."""
        return [i for i, t in enumerate(token_ids) if t not in self._special]

    @torch.inference_mode()
    def masked_token_log_probs(
        self, token_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], *, desc: str = "masked scoring"
    ) -> list[np.ndarray]:
        """Log-probability of each original token when that single position is masked.

        All masked variants of all sentences go through the model in shared, length-sorted batches.

        Parameters
        ----------
        token_ids : sequence of sequence of int
            Encoded sentences (special tokens included).
        positions : sequence of sequence of int
            For each sentence, the positions to mask one at a time.

        Returns
        -------
        list of ndarray
            ``result[i][j]`` is ``log p(token_ids[i][positions[i][j]] | sentence i with that position masked)``.
        """
        if len(token_ids) != len(positions):
            raise ValueError("token_ids and positions must have the same length")
        variants: list[tuple[int, int, int]] = [(i, j, p) for i, pos in enumerate(positions) for j, p in enumerate(pos)]
        lengths = np.array([len(token_ids[i]) for i, _, _ in variants], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        done: list[tuple[np.ndarray, torch.Tensor]] = []
        packed = self._packing_works([token_ids[i] for i, _, _ in (variants[:1] + variants[-1:])])

        def step(ks: np.ndarray) -> None:
            batch = [variants[k] for k in ks]
            seqs = []
            for i, _, p in batch:
                seq = list(token_ids[i])
                seq[p] = self.mask_token_id
                seqs.append(seq)
            ids, mask, rows, cols, extra = self._layout(seqs, [(k, p) for k, (_, _, p) in enumerate(batch)],
                                                        packed=packed)
            targets = self._long([token_ids[i][p] for i, _, p in batch])
            done.append((ks, self._scored_log_probs(ids, mask, rows, cols, targets, **extra)))

        self._each_batch(order, step, desc=desc, lengths=lengths, packed=packed)
        flat = np.zeros(len(variants), dtype=np.float64)
        if done:  # one device-to-host copy for the whole call
            flat[np.concatenate([k for k, _ in done])] = torch.cat([v for _, v in done]).cpu().numpy()
        bounds = np.cumsum([0] + [len(pos) for pos in positions])
        return [flat[bounds[i]:bounds[i + 1]].copy() for i in range(len(positions))]

    def pseudo_log_likelihood(self, texts: Sequence[str]) -> np.ndarray:
        """Pseudo-log-likelihood (Salazar et al. 2020): sum over tokens of log p(token | rest), masking each once."""
        encoded = self.encode(texts)
        scores = self.masked_token_log_probs(encoded, [self.content_positions(e) for e in encoded], desc="PLL")
        return np.array([s.sum() for s in scores])

    @torch.inference_mode()
    def unmasked_token_log_probs(self, token_ids: Sequence[Sequence[int]], *, with_attentions: bool = False
                                 ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Log p of every token given the whole unmasked sentence (AUL), optionally with attention.

        Returns
        -------
        list of (ndarray, ndarray or None)
            Per sentence: log-probabilities of all tokens (special tokens included) and, when asked,
            the attention weights averaged over layers and heads, shape (tokens, tokens).
        """
        order = self._length_order(token_ids)
        out: list[Any] = [None] * len(token_ids)

        def step(idx: np.ndarray) -> None:
            ids, mask = self._pad([token_ids[i] for i in idx])
            res = self.model(input_ids=ids, attention_mask=mask, output_attentions=with_attentions)
            logp = torch.log_softmax(res.logits.float(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
            att = torch.stack(res.attentions).float().mean(dim=(0, 2)) if with_attentions else None
            for row, i in enumerate(idx):
                n = len(token_ids[i])
                out[i] = (logp[row, :n].cpu().numpy().astype(np.float64),
                          None if att is None else att[row, :n, :n].cpu().numpy())

        with self._eager_attention(with_attentions):
            self._each_batch(order, step, desc="AUL")
        return out

    def _mask_positions(self, ids: Sequence[int]) -> list[int]:
        return [i for i, t in enumerate(ids) if t == self.mask_token_id]

    def candidate_ids(self, candidates: Sequence[str]) -> list[list[int]]:
        """Token ids of each candidate as it would appear after a space."""
        return [list(self.tokenizer(" " + c.strip(), add_special_tokens=False)["input_ids"]) for c in candidates]

    @torch.inference_mode()
    def _each_mask_logprobs(self, texts: Sequence[str], mask_index: Sequence[int],
                            consume: Callable[[np.ndarray, torch.Tensor], None], *, desc: str) -> None:
        """Call ``consume(indices, log_probs)`` per batch: float32 log-softmax over the vocabulary at the
        chosen mask of each text (shape (batch, vocab), on the device).

        The vocabulary head runs at the masks only, and nothing of shape (all texts, vocab) is ever held:
        callers keep the columns or top-k they need, so memory is bounded by one batch.
        """
        encoded = self.encode(texts)
        positions = []
        for text, ids, k in zip(texts, encoded, mask_index):
            masks = self._mask_positions(ids)
            if len(masks) <= k:
                raise RaikitInputError(f"text {text!r} has {len(masks)} mask token(s) {self.mask_token!r}; "
                                       f"mask number {k + 1} was asked for")
            positions.append(masks[k])
        order = self._length_order(encoded)
        packed = self._packing_works([encoded[order[0]], encoded[order[-1]]]) if encoded else False

        def step(idx: np.ndarray) -> None:
            ids, mask, rows, cols, extra = self._layout([encoded[i] for i in idx],
                                                        [(k, positions[i]) for k, i in enumerate(idx)], packed=packed)
            vectors, head = self._vectors_at(ids, mask, rows, cols, **extra)
            for k, logits in self._logit_blocks(vectors, head):  # fixed-size blocks: bounded, reusable memory
                consume(idx[k:k + len(logits)], torch.log_softmax(logits, dim=-1))

        self._each_batch(order, step, desc=desc, lengths=[len(e) for e in encoded], packed=packed)

    def fill_mask(self, texts: Sequence[str], candidates: Sequence[str], *,
                  mask_index: int | Sequence[int] = 0) -> np.ndarray:
        """Log-probability of each single-token candidate at a mask of each text.

        Parameters
        ----------
        texts : sequence of str
            Texts containing the tokenizer's mask token (``adapter.mask_token``).
        candidates : sequence of str
            Words to score; each must be one token in this vocabulary.
        mask_index : int or sequence of int
            Which mask of each text to score (0 = first), for texts with several masks.

        Returns
        -------
        ndarray, shape (n_texts, n_candidates)
        """
        ids = self.candidate_ids(candidates)
        multi = [c for c, i in zip(candidates, ids) if len(i) != 1]
        if multi:
            raise RaikitInputError(f"model {self.name!r}: fill-mask candidates must be single tokens; "
                                   f"these are not: {', '.join(multi[:5])}")
        k = [mask_index] * len(texts) if isinstance(mask_index, int) else list(mask_index)
        columns = self._long([i[0] for i in ids])
        done: list[tuple[np.ndarray, torch.Tensor]] = []
        self._each_mask_logprobs(texts, k, lambda idx, logp: done.append((idx, logp[:, columns])), desc="fill-mask")
        out = np.zeros((len(texts), len(candidates)), dtype=np.float64)
        if done:  # one device-to-host copy for the whole call
            out[np.concatenate([i for i, _ in done])] = torch.cat([v for _, v in done]).cpu().numpy()
        return out

    def top_k(self, texts: Sequence[str], *, k: int = 10, mask_index: int = 0) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely tokens at a mask of each text, with log-probabilities."""
        out: list[Any] = [None] * len(texts)

        def keep(idx: np.ndarray, logp: torch.Tensor) -> None:
            values, indices = logp.topk(k, dim=-1)
            for row, i in enumerate(idx):
                out[i] = [(self.tokenizer.decode([int(t)]).strip(), float(v))
                          for v, t in zip(values[row].tolist(), indices[row].tolist())]

        self._each_mask_logprobs(texts, [mask_index] * len(texts), keep, desc="top-k")
        return out


class ClassifierAdapter(ModelAdapter):
    """A sequence classifier: probabilities of every class, cached per text.

    The output follows the head's ``config.problem_type``:

    * single-label (the default with two or more labels): softmax over the labels;
    * ``multi_label_classification``: a sigmoid per label (the columns need not sum to 1; the
      "predicted" class is the most probable label);
    * one output and no problem type (a binary head with one logit): ``p = sigmoid(logit)``, exposed as
      two classes ``[1 - p, p]`` labelled ``not <label>`` and ``<label>``, so flips, explanations and
      per-group rates work as for any binary classifier;
    * ``regression``: refused (there are no class probabilities to explain or compare).
    """

    kind: ClassVar[ModelKind] = "classifier"

    def __init__(self, model: Any, tokenizer: Any, *, cache_size: int = 200_000, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        id2label = getattr(model.config, "id2label", None) or {}
        n = int(model.config.num_labels)
        problem = getattr(model.config, "problem_type", None)
        if problem == "regression":
            raise RaikitInputError(f"model {self.name!r} has a regression head (problem_type 'regression'); raikit's "
                                   "classifier probes and explanations need class probabilities")
        labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(n)]
        if problem == "multi_label_classification":
            self.output: str = "sigmoid per label (multi-label)"
        elif n == 1:
            self.output = "sigmoid of the single logit, as [1 - p, p]"
            labels = [f"not {labels[0]}", labels[0]]
        else:
            self.output = "softmax over the labels"
        self.labels: list[str] = labels
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities from the head's logits, by the head's problem type (see the class docstring)."""
        logits = logits.float()
        if self.output.startswith("sigmoid per label"):
            return torch.sigmoid(logits)
        if logits.shape[-1] == 1:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], dim=-1)
        return torch.softmax(logits, -1)

    def describe(self) -> dict[str, Any]:
        """As :meth:`ModelAdapter.describe`, plus how probabilities are read from the head."""
        return {**super().describe(), "output": self.output}

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for each text (softmax, or sigmoid for multi-label and one-logit heads).

        Repeated texts, within a call or across calls, go to the model once.

        Returns
        -------
        ndarray, shape (n_texts, n_classes), float64
        """
        texts = [str(t) for t in texts]
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            encoded = self.encode(missing)
            order = self._length_order(encoded)

            def step(idx: np.ndarray) -> None:
                ids, mask = self._pad([encoded[i] for i in idx])
                probs = self._probabilities(self.model(input_ids=ids, attention_mask=mask).logits).cpu().numpy()
                for row, i in enumerate(idx):
                    self._cache[missing[i]] = probs[row].astype(np.float64)

            self._each_batch(order, step, desc="classifying")
        result = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, len(self.labels)))
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def clear_cache(self) -> None:
        """Forget cached probabilities and attention maps (after changing the weights, or to time a cold run)."""
        self._cache.clear()
        self.__dict__.pop("_attention_cache", None)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Index of the most probable class for each text."""
        return self.predict_proba(texts).argmax(axis=1)


class MultipleChoiceAdapter(ModelAdapter):
    """A multiple-choice model (``AutoModelForMultipleChoice``, e.g. a RoBERTa fine-tuned on RACE).

    Each item is encoded as one (first, second) text pair per choice, all choices of an item in one row
    group; the head gives one logit per choice.
    """

    kind: ClassVar[ModelKind] = "multiple_choice"

    @torch.inference_mode()
    def choice_logits(self, firsts: Sequence[str], choices: Sequence[Sequence[str]]) -> np.ndarray:
        """The head's logit for each choice of each item.

        Parameters
        ----------
        firsts : sequence of str
            The first segment of every pair of an item (RACE form: the passage).
        choices : sequence of sequence of str
            The second segment per choice (RACE form: question and answer); every item has as many.

        Returns
        -------
        ndarray, shape (n_items, n_choices), float64
        """
        _check_texts(firsts)
        if len(firsts) != len(choices):
            raise ValueError("firsts and choices must have the same length")
        n_choices = {len(c) for c in choices}
        if len(n_choices) > 1:
            raise ValueError("every item needs the same number of choices")
        k = n_choices.pop() if n_choices else 0
        out = np.zeros((len(firsts), k), dtype=np.float64)
        if not len(firsts) or not k:
            return out
        pairs = self.tokenizer([f for f in firsts for _ in range(k)], [c for cs in choices for c in cs],
                               truncation="only_first", max_length=self.max_length)
        ids = [list(x) for x in pairs["input_ids"]]
        types = [list(x) for x in pairs["token_type_ids"]] if "token_type_ids" in pairs else None
        longest = [max(len(ids[i * k + j]) for j in range(k)) for i in range(len(firsts))]
        order = np.argsort([-n for n in longest], kind="stable")

        def step(idx: np.ndarray) -> None:
            rows = [i * k + j for i in idx for j in range(k)]
            input_ids, mask = self._pad([ids[r] for r in rows])
            extra = {}
            if types is not None:
                tt = torch.zeros_like(input_ids)
                for n, r in enumerate(rows):
                    tt[n, :len(types[r])] = torch.as_tensor(types[r])
                extra["token_type_ids"] = tt
            shape = (len(idx), k, input_ids.shape[1])
            logits = self.model(input_ids=input_ids.view(shape), attention_mask=mask.view(shape),
                                **{key: v.view(shape) for key, v in extra.items()}).logits
            out[idx] = logits.float().cpu().numpy().reshape(len(idx), k)

        self._each_batch(order, step, desc="multiple choice")
        return out
