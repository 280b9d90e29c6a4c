"""Where the model-facing stages' backend calls run: in this process, or on a Ray cluster.

Every stage gets its models from the one `BackendPool` of its process, and every model call is
a batch (`generate` or `option_logprobs` over many requests). With `--executor ray` the pool
loads each backend as `RayBackend`: `concurrency` Ray actors, each holding its own copy of the
backend (any spec: `embedded`, `hf:`, `ct2:`, `vllm:`, `openai:`) with `num_cpus` / `num_gpus`
each; a batch is cut into one contiguous shard per actor, the shards run in parallel and the
answers come back in order. The stages themselves do not change: record ids, principle draws,
the keyed JSONL written after every chunk (so `--resume` after a killed driver redoes nothing
done) are the local executor's.

What does change: a sampled answer's random stream. A backend seeds its sampling per call, and
an actor sees only its shard, so sampled texts can differ from the local run (greedy ones do
not, for a backend whose answer to a request does not depend on the other requests of its
batch: charter's `hf:` and `embedded` pad on the left and mask, so they qualify up to floating
point; `fake` exactly).

Connecting: `address` None starts a local Ray with this machine's CPUs (and stops it at exit);
`auto` joins the cluster this machine belongs to; `ray://host:port` a remote cluster through Ray
Client. Ray is an optional extra (`pip install 'charter[ray]'`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import Field

from charter.errors import BackendError, ConfigError
from charter.records import Completion, Message, OptionQuery, Sampling, Strict


class ExecutorConfig(Strict):
    """Where backend calls run (`executor:` in a run config, `--executor` on a command)."""

    kind: Literal["local", "ray"] = Field("local", description="local (this process) or ray.")
    address: str | None = Field(
        None,
        description="Ray cluster: none starts a local Ray with this machine's CPUs; auto joins "
        "this machine's cluster; ray://host:port connects through Ray Client.",
    )
    concurrency: int = Field(2, ge=1, description="Ray actors per model (each a full copy).")
    num_cpus: float = Field(1.0, gt=0.0, description="CPUs per actor (also its torch threads).")
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs per actor.")


# A local Ray started by charter counts this many logical CPUs per core (see `connect`).
LOCAL_MODELS = 4

_CURRENT: ContextVar[ExecutorConfig | None] = ContextVar("charter_executor", default=None)


def current() -> ExecutorConfig:
    """The executor of the command running in this context (local unless one was set)."""
    return _CURRENT.get() or ExecutorConfig()


@contextlib.contextmanager
def using(cfg: ExecutorConfig) -> Iterator[ExecutorConfig]:
    """Run the enclosed command's backend calls on `cfg` (a pool made inside picks it up)."""
    token = _CURRENT.set(cfg)
    try:
        yield cfg
    finally:
        _CURRENT.reset(token)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray, which is not installed: pip install 'charter[ray]' "
            "(or pip install 'ray>=2.40')"
        ) from None
    return ray


def connect(cfg: ExecutorConfig) -> Any:
    """Ray, connected as `cfg` says (once per process), with the resources checked."""
    ray = _ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if cfg.address is None:
            # A new local Ray every time, never a cluster left behind by another process. Its
            # logical CPUs leave room for the actors of several models at once: a stage holds
            # its models (policy and labeller) all along but computes with one at a time, so
            # idle actors must not block the busy model's from being placed.
            kwargs.update(address="local", num_cpus=(os.cpu_count() or 1) * LOCAL_MODELS)
        else:
            kwargs["address"] = cfg.address
        try:
            ray.init(**kwargs)
        except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
            where = cfg.address or "a local Ray"
            raise BackendError(
                f"cannot start or reach the Ray cluster at {where}: {type(e).__name__}: {e}. "
                "Check the address (ray://host:10001 for Ray Client, auto on a cluster node) "
                "and that the cluster is running (`ray status`)."
            ) from None
    return ray


def check_resources(ray: Any, cfg: ExecutorConfig, spec: str) -> None:
    """Refuse actors the cluster cannot place now (Ray would wait for them forever)."""
    total, free = ray.cluster_resources(), ray.available_resources()
    need = {"CPU": cfg.concurrency * cfg.num_cpus, "GPU": cfg.concurrency * cfg.num_gpus}
    for name, amount in need.items():
        if amount and free.get(name, 0.0) < amount:
            raise ConfigError(
                f"the Ray cluster has {free.get(name, 0.0):g} of its {total.get(name, 0.0):g} "
                f"{name}s free; {cfg.concurrency} actors of {spec!r} × "
                f"{amount / cfg.concurrency:g} {name}s each need {amount:g}. Lower "
                "--concurrency or the per-actor resources (--num-cpus, --num-gpus), or add nodes."
            )


class BackendActor:
    """One copy of a backend inside a Ray actor (a plain class: `ray.remote` wraps it)."""

    def __init__(
        self, spec: str, defaults: dict[str, Any], options: dict[str, Any], threads: int
    ) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        from charter.backends import load_backend

        self.backend = load_backend(spec, defaults=defaults, **options)

    def spec(self) -> str:
        return str(self.backend.spec)

    def fingerprint(self) -> str:
        from charter.feedback.labeler import model_fingerprint

        return model_fingerprint(self.backend)

    def describe(self) -> dict[str, Any]:
        from charter.backends.engine import describe

        return describe(self.backend)

    def generate(self, requests: list[list[Message]], params: Sampling) -> list[Completion]:
        return self.backend.generate(requests, params)

    def option_logprobs(self, requests: list[OptionQuery]) -> list[dict[str, float]]:
        return self.backend.option_logprobs(requests)


def shards(n: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous (start, end) ranges covering `range(n)`, sizes differing by at most 1
    (empty ranges dropped).

    >>> shards(5, 2), shards(1, 3), shards(0, 2)
    ([(0, 3), (3, 5)], [(0, 1)], [])
    """
    size, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            out.append((start, end))
        start = end
    return out


class RayBackend:
    """A backend served by `concurrency` Ray actors; a batch is split across them in order."""

    def __init__(
        self,
        spec: str,
        defaults: dict[str, Any],
        options: dict[str, Any],
        cfg: ExecutorConfig,
    ) -> None:
        ray = connect(cfg)
        check_resources(ray, cfg, spec)
        self._ray = ray
        self.cfg = cfg
        remote = ray.remote(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus)(BackendActor)
        threads = max(1, int(cfg.num_cpus))
        self.actors = [
            remote.remote(spec, defaults, options, threads) for _ in range(cfg.concurrency)
        ]
        try:
            # Each actor loads its model now, so a bad spec fails here, named.
            specs = ray.get([a.spec.remote() for a in self.actors])
        except Exception as e:
            self.close()
            cause = getattr(e, "cause", None) or e
            raise BackendError(f"a Ray actor could not load {spec!r}: {cause}") from None
        self.spec = str(specs[0])
        # What the manifest records; asked now, since the actors go when the pool releases them.
        self._info: dict[str, Any] = dict(ray.get(self.actors[0].describe.remote()))
        self._fingerprint: str | None = None

    def _map(self, method: str, requests: Sequence[Any], *extra: Any) -> list[Any]:
        parts = shards(len(requests), len(self.actors))
        futures = [
            getattr(actor, method).remote(list(requests[a:b]), *extra)
            for actor, (a, b) in zip(self.actors, parts, strict=False)
        ]
        out: list[Any] = []
        for answers in self._ray.get(futures):
            out.extend(answers)
        return out

    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        return self._map("generate", [list(r) for r in requests], params)

    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        return self._map("option_logprobs", requests)

    def fingerprint(self) -> str:
        """The model's fingerprint as the first actor computes it (the labeller's provenance)."""
        if self._fingerprint is None:
            if not self.actors:
                raise BackendError(f"the Ray actors of {self.spec!r} were closed")
            self._fingerprint = str(self._ray.get(self.actors[0].fingerprint.remote()))
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        info = dict(self._info)
        info.update(
            executor="ray",
            actors=len(self.actors),
            num_cpus=self.cfg.num_cpus,
            num_gpus=self.cfg.num_gpus,
            address=self.cfg.address or "local",
        )
        return info

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self.actors = []


def load(spec: str, defaults: dict[str, Any], options: dict[str, Any], cfg: ExecutorConfig) -> Any:
    """The backend `spec` on executor `cfg` (local: `load_backend`)."""
    from charter.backends import check_spec, load_backend

    if cfg.kind == "local":
        return load_backend(spec, defaults=defaults, **options)
    from charter.backends import _track

    check_spec(spec)
    backend = RayBackend(spec, defaults, options, cfg)
    _track(backend)  # the run folder's manifest records which engines answered
    return backend
