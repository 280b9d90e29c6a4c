"""`BackendPool`: the one cache of loaded backends in a charter process.

Every stage asks the pool for its models; a model that several roles share (the policy that is
also the feedback model and the judge) is loaded once, a stage that is already complete loads
nothing, and `close()` frees everything at the end of the run.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Mapping
from typing import Any

from charter.backends.base import Backend
from charter.backends.executor import ExecutorConfig, current, load
from charter.records import stable_id


def _key(spec: str, options: dict[str, Any]) -> str:
    """The cache key of (spec, options); objects in options (a test's scripted answers) count
    by identity."""
    text = json.dumps(options, sort_keys=True, default=lambda o: f"<{type(o).__name__}@{id(o)}>")
    return stable_id(spec, text)


class BackendPool:
    """Loads each backend on first use, once per (spec, options).

    Backends handed in (`given`, keyed by a role or model name such as `judge`, or by spec;
    or `provide`) are used instead of loading and are never freed by the pool.
    """

    def __init__(
        self,
        batch_size: int = 16,
        given: Mapping[str, Backend] | None = None,
        executor: ExecutorConfig | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.given = dict(given or {})
        self._loaded: dict[str, Backend] = {}
        # Where the backends run: the command's executor (`--executor`), else this process.
        self.executor = executor or current()

    def provide(self, spec: str, backend: Backend, options: dict[str, Any] | None = None) -> None:
        """Use an already loaded `backend` for `spec` (tests, notebooks)."""
        if options:
            self._loaded[_key(spec, options)] = backend
        else:
            self.given[spec] = backend

    def get(
        self, spec: str, options: dict[str, Any] | None = None, name: str | None = None
    ) -> Backend:
        options = dict(options or {})
        if name is not None and name in self.given:
            return self.given[name]
        if spec in self.given and not options:
            return self.given[spec]
        key = _key(spec, options)
        if key not in self._loaded:
            self._loaded[key] = load(spec, {"batch_size": self.batch_size}, options, self.executor)
        return self._loaded[key]

    def loaded(self) -> int:
        """How many backends this pool has loaded (not counting those handed in)."""
        return len(self._loaded)

    def release(self, spec: str, options: dict[str, Any] | None = None) -> None:
        """Free a loaded model (one policy at a time keeps memory flat)."""
        backend = self._loaded.pop(_key(spec, dict(options or {})), None)
        if backend is not None:
            close = getattr(backend, "close", None)
            if callable(close):  # Ray actors hold their CPUs and GPUs until closed
                close()
            gc.collect()

    def close(self) -> None:
        """Free every backend the pool loaded."""
        for backend in self._loaded.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()
        self._loaded.clear()
        gc.collect()

    def __enter__(self) -> BackendPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
