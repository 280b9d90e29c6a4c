"""Typed errors for things a user can fix.

Every error that reaches the command line as a `CharterError` is printed as one paragraph and
ends the process with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CharterError(Exception):
    """A problem the user can act on: bad input, bad config, an unreachable server."""

    exit_code = 2


class InputError(CharterError):
    """A malformed input file; the message names the file, line and field."""

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class ConfigError(CharterError):
    """An invalid run configuration (unknown key, wrong type, unknown preset)."""


class BackendError(CharterError):
    """A model backend could not be created or could not answer."""


class RunFolderError(CharterError):
    """A run folder is in a state that the requested action cannot continue from."""
