"""Run one per-text routine for many texts at once, merging their model calls into shared batches.

SHAP's Partition explainer and LIME explain one text at a time and call the model many times per
text. :func:`run_in_lockstep` runs the routine for a group of texts in threads that take turns (only
one runs Python code at any moment, so tokenizers and explainer objects are never used
concurrently). Each model call blocks until every live thread of the group is waiting on one;
then the union of their inputs goes to ``predict`` in a single call (the adapter sorts it by
length, batches it and caches repeated texts) and each thread gets its rows back.

Each routine sees exactly the outputs it would see alone, so the results are the same as running
the texts one by one; only the batching of the forward passes differs.

An exception in the calling thread while it waits (SIGTERM's :class:`~raikit.audits.errors.RunInterrupted`,
Ctrl-C) cancels the group: every thread stops at its next model call and the caller re-raises only once all
of them have ended, so no thread is left inside torch when the interpreter exits (which aborted the process
with "terminate called without an active exception", exit 134, instead of exiting 143).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = ["run_in_lockstep"]

T = TypeVar("T")
R = TypeVar("R")

Predict = Callable[[Sequence[str]], np.ndarray]


class _Cancelled(Exception):
    """Raised in a group's threads once the caller has stopped waiting for them."""


class _Group:
    def __init__(self, predict: Predict, live: int) -> None:
        self.predict = predict
        self.live = live
        self.cond = threading.Condition(threading.Lock())
        self.pending: list[tuple[list[str], dict[str, Any]]] = []
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the group: waiting threads and every later model call raise :class:`_Cancelled`."""
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def flush_if_all_waiting(self) -> None:
        """Called with the lock held: serve every pending call once all live threads wait."""
        if self.cancelled or not self.pending or len(self.pending) < self.live:
            return
        pending, self.pending = self.pending, []
        texts = [t for batch, _ in pending for t in batch]
        try:
            out = np.asarray(self.predict(texts))
        except BaseException as exc:  # handed to every waiting thread, re-raised there
            for _, slot in pending:
                slot["error"] = exc
                slot["done"] = True
        else:
            start = 0
            for batch, slot in pending:
                slot["out"] = out[start:start + len(batch)]
                slot["done"] = True
                start += len(batch)
        self.cond.notify_all()

    def call(self, texts: Sequence[str]) -> np.ndarray:
        if self.cancelled:
            raise _Cancelled
        slot: dict[str, Any] = {"done": False}
        self.pending.append(([str(t) for t in texts], slot))
        self.flush_if_all_waiting()
        while not slot["done"] and not self.cancelled:
            self.cond.wait()
        if not slot["done"]:
            raise _Cancelled
        if "error" in slot:
            raise slot["error"]
        return slot["out"]


def run_in_lockstep(items: Sequence[T], work: Callable[[T, Predict], R], predict: Predict, *,
                    group_size: int = 16, on_done: Callable[[], None] | None = None) -> list[R]:
    """``[work(item, shared_predict) for item in items]``, with model calls batched across items.

    Parameters
    ----------
    items : sequence
        One per routine run (a text, usually).
    work : callable
        ``work(item, predict_fn) -> result``; must call ``predict_fn(list_of_texts) -> (n, C)`` for
        every model evaluation.
    predict : callable
        The real model call (e.g. ``adapter.predict_proba``).
    group_size : int
        Items run side by side; 1 runs them one after the other in this thread.
    on_done : callable, optional
        Called after each item finishes (progress bars).

    Returns
    -------
    list
        Results in the order of ``items``.
    """
    results: list[Any] = [None] * len(items)
    if group_size <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = work(item, predict)
            if on_done:
                on_done()
        return results
    for start in range(0, len(items), group_size):
        chunk = list(range(start, min(start + group_size, len(items))))
        group = _Group(predict, live=len(chunk))
        errors: list[BaseException] = []

        def worker(i: int, group: _Group = group, errors: list[BaseException] = errors) -> None:
            with group.cond:
                try:
                    results[i] = group_work(i, group)
                except BaseException as exc:  # re-raised in the calling thread below
                    errors.append(exc)
                finally:
                    group.live -= 1
                    group.flush_if_all_waiting()
                    if on_done:
                        on_done()

        def group_work(i: int, group: _Group) -> Any:
            return work(items[i], group.call)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in chunk]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:  # interrupted while waiting: stop the threads before anything unwinds further
            group.cancel()
            for thread in threads:
                if thread.ident is not None:
                    thread.join()
            raise
        errors = [e for e in errors if not isinstance(e, _Cancelled)]
        if errors:
            raise errors[0]
    return results
