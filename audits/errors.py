"""Errors raised by raikit.

Every error a user can cause (bad config, model, data or flag) is a :class:`RaikitInputError`
whose message is one line naming the file, field and value. The CLI turns it into exit code 2.
"""
from __future__ import annotations

__all__ = ["RaikitError", "RaikitInputError", "RenamedKeyWarning", "RunFailedError", "RunInterrupted"]


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


class RenamedKeyWarning(FutureWarning):
    """A config key under its old name, still read as the new one: one line naming the file, table and keys.

    The CLI prints it as ``raikit: warning: <message>``.
    """


class RunFailedError(RaikitError):
    """A section of an audit failed while running (not the user's input)."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM.

    A ``KeyboardInterrupt`` so that code which cleans up on Ctrl-C also cleans up on SIGTERM.

    Parameters
    ----------
    message : str
        One line: what stopped the run and, once a section has finished, how to resume it.
    exit_code : int
        130 for SIGINT, 143 for SIGTERM (128 + the signal number, as shells report it).
    """

    def __init__(self, message: str, *, exit_code: int = 130) -> None:
        self.exit_code = exit_code
        super().__init__(message)
