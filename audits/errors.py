"""Errors raised by raikit.

Every error a user can cause (bad config, model, data or flag) is a :class:`RaikitInputError`
whose message is one line naming the file, field and value. The CLI turns it into exit code 2.
"""
from __future__ import annotations

__all__ = ["RaikitError", "RaikitInputError", "RunFailedError"]


class RaikitError(Exception):
    """Base class of every error raikit raises on purpose."""


class RaikitInputError(RaikitError, ValueError):
    """Bad user input: a config key, a model, a data file or a command-line flag.

    Parameters
    ----------
    message : str
        One line saying what is wrong and how to fix it.
    where : str, optional
        The file (and table/key) the problem was found in, prefixed to the message.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        self.problem = message
        super().__init__(f"{where}: {message}" if where else message)


class RunFailedError(RaikitError):
    """A section of an audit failed while running (not the user's input)."""
