"""A corpus simulated by Ray workers and streamed to training, block for block identical.

Training asks its :class:`~sgnn.corpus.BatchSource` for blocks ``0, 1, 2, ...``
(:func:`sgnn.train.epoch_blocks`), and block ``i`` is a pure function of the corpus seed
and ``i``. So the blocks can be simulated anywhere: :class:`ShardedSource` keeps a pool of
Ray actors, each holding its own compiled :class:`~sgnn.corpus.Corpus` rebuilt from the
models' JSON (no pickled sympy, no pickled closures), deals the planned block indices out
round-robin (worker ``i % n`` simulates block ``i``), keeps at most ``prefetch`` blocks in
flight, and hands them to the trainer strictly in index order. The trainer waits only when
simulation is slower than the optimiser step.

Because every block is pure, a lost worker costs nothing but time: Ray restarts the actor
and replays the call (``max_restarts``/``max_task_retries``), and the block comes out the
same. A request outside the plan (a resumed run starting at a later epoch, a caller asking
out of order) is answered too: the pipeline restarts from that block.

Ray is imported only when a source is opened; ``import sgnn.sharded`` costs nothing.

Running against an existing cluster (``address="ray://head:10001"`` or ``"auto"``) needs
the same mmw (and torch) importable on every node, or ``working_dir`` pointing at this
checkout so Ray ships it to the workers (see :func:`connect`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgnn.corpus import Batch, Corpus, CorpusConfig
from sgnn.heads import DEFAULT_HEADS
from sgnn.train import TrainConfig, epoch_blocks

__all__ = ["EXECUTORS", "CorpusSpec", "CorpusWorker", "ShardedConfig", "ShardedSource",
           "connect", "open_source", "training_plan"]

EXECUTORS = ("local", "ray")

ROOT = Path(__file__).resolve().parents[1]
"""The checkout that holds the packages: put on a local cluster's workers' PYTHONPATH."""

EXCLUDES = [".git", ".venv", "**/__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"]
"""Left out when ``working_dir`` ships the checkout (Ray also skips what .gitignore names)."""


def connect(address: str | None = None, *, num_cpus: int | None = None,
            working_dir: str | Path | None = None) -> bool:
    """Join a Ray cluster, or start a local one; True when this call did it.

    ``address=None`` starts a private local cluster (``num_cpus`` CPUs, no dashboard) whose
    workers import this checkout through ``PYTHONPATH``. An address (``"auto"``,
    ``"HOST:6379"``, ``"ray://HOST:10001"``) joins an existing cluster; its nodes must
    import the same mmw, or ``working_dir`` (this checkout; default: the environment
    variable ``MMW_RAY_WORKING_DIR``, so the command line can ship code without an option
    per command) is uploaded to every worker by Ray. A session already open in this process
    is reused as it is and left open (returns False), so callers shut down only what they
    started.
    """
    import ray

    if ray.is_initialized():
        return False
    working_dir = working_dir or os.environ.get("MMW_RAY_WORKING_DIR") or None
    runtime_env: dict[str, Any] = {}
    if working_dir is not None:
        runtime_env = {"working_dir": str(working_dir), "excludes": EXCLUDES}
    elif address is None:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        runtime_env = {"env_vars": {"PYTHONPATH": path}}
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR",
                 runtime_env=runtime_env or None)
    else:
        ray.init(address=address, logging_level="ERROR", runtime_env=runtime_env or None)
    return True


@dataclass(frozen=True)
class CorpusSpec:
    """Everything a worker needs to rebuild a :class:`Corpus`: plain JSON-ready data.

    Models travel as their JSON (what ``mechanistic.serialize`` rebuilds without eval or
    pickle), so a worker on another machine compiles the very same simulator. Heads
    travel by name: a worker finds a plugin's head as the driver does (``MMW_PLUGINS``
    or an installed entry point, importable there).
    """

    models: tuple[str, ...]
    config: Mapping[str, Any]
    weights: tuple[float, ...]
    fits: tuple[Mapping[str, float] | None, ...]
    names: tuple[str, ...]
    heads: tuple[str, ...] = DEFAULT_HEADS

    def __post_init__(self) -> None:
        n = len(self.models)
        if n == 0:
            raise ValueError("CorpusSpec.models: a corpus needs at least one model")
        for name in ("weights", "fits", "names"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CorpusSpec.{name}: {len(getattr(self, name))} entries for "
                                 f"{n} models")

    @classmethod
    def from_corpus(cls, corpus: Corpus) -> CorpusSpec:
        from mechanistic.serialize import model_to_json

        return cls(models=tuple(model_to_json(m) for m in corpus.models),
                   config=corpus.config.to_dict(),
                   weights=tuple(float(w) for w in corpus.weights),
                   fits=tuple(None if f is None else dict(f) for f in corpus.fits),
                   names=tuple(corpus.names), heads=tuple(corpus.head_names))

    def build(self) -> Corpus:
        from mechanistic.serialize import model_from_json

        return Corpus([model_from_json(m) for m in self.models],
                      CorpusConfig.from_dict(self.config), weights=list(self.weights),
                      fits=[None if f is None else dict(f) for f in self.fits],
                      names=list(self.names), heads=self.heads)

    def to_json(self) -> str:
        return json.dumps({"models": list(self.models), "config": dict(self.config),
                           "weights": list(self.weights), "fits": list(self.fits),
                           "names": list(self.names), "heads": list(self.heads)})


@dataclass(frozen=True)
class ShardedConfig:
    """How many Ray workers simulate, how far ahead, and how they recover.

    ``prefetch`` bounds the blocks simulated but not yet consumed (memory: about
    ``prefetch x block x window`` floats); ``None`` means two per worker, enough to keep
    every worker busy while the trainer takes one. ``threads`` is torch's intra-op threads
    inside each worker (one per CPU the worker reserves, so workers do not oversubscribe).
    """

    workers: int = 2
    num_cpus: float = 1.0
    prefetch: int | None = None
    max_restarts: int = 3
    threads: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"ShardedConfig.workers must be an integer >= 1, "
                             f"got {self.workers!r}")
        if not (math.isfinite(self.num_cpus) and self.num_cpus > 0):
            raise ValueError(f"ShardedConfig.num_cpus must be > 0, got {self.num_cpus!r}")
        if self.prefetch is not None and (not isinstance(self.prefetch, int)
                                          or self.prefetch < 1):
            raise ValueError(f"ShardedConfig.prefetch must be an integer >= 1 or None, "
                             f"got {self.prefetch!r}")
        for name in ("max_restarts", "threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"ShardedConfig.{name} must be an integer >= 0")

    @property
    def in_flight(self) -> int:
        return self.prefetch if self.prefetch is not None else 2 * self.workers


class CorpusWorker:
    """One Ray actor's state: a compiled corpus; answers ``block(i, n)`` as plain arrays.

    Arrays (not torch tensors) cross the object store: numpy buffers travel without a
    copy through Ray's serializer, and the driver turns them back into the same tensors.
    """

    def __init__(self, spec: CorpusSpec, threads: int = 1) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.corpus = spec.build()

    def block(self, index: int, size: int) -> dict[str, np.ndarray]:
        return _to_arrays(self.corpus.batch_at(index, size))

    def pid(self) -> int:
        return os.getpid()

    def cpu_seconds(self) -> float:
        """CPU time this worker process has used (throughput per CPU, apart from load)."""
        return time.process_time()


def _to_arrays(batch: Batch) -> dict[str, np.ndarray]:
    out = {key: value.numpy() for key, value in batch.arrays().items()}
    if batch.clean is not None:
        out["clean"] = batch.clean.numpy()
    return out


def _from_arrays(arrays: Mapping[str, np.ndarray]) -> Batch:
    # A copy: object-store buffers are read-only and the trainer owns its tensors.
    return Batch.from_arrays({key: torch.from_numpy(np.array(value))
                              for key, value in arrays.items()})


def training_plan(config: TrainConfig, start_epoch: int = 0) -> list[tuple[int, int]]:
    """``(block index, size)`` of every block a training run asks for, from ``start_epoch``."""
    return [b for e in range(start_epoch, config.epochs) for b in epoch_blocks(config, e)]


class ShardedSource:
    """A :class:`~sgnn.corpus.BatchSource` whose blocks are simulated by Ray actors.

    ``plan`` is the sequence of ``(index, size)`` requests expected (see
    :func:`training_plan`); blocks of it are simulated ahead, at most
    ``config.in_flight`` at a time. Use as a context manager (or call :meth:`close`): the
    actors are killed, and a Ray session this source started is shut down.
    """

    def __init__(self, corpus: Corpus | CorpusSpec, plan: Iterable[tuple[int, int]] = (),
                 config: ShardedConfig | None = None, *, address: str | None = None,
                 working_dir: str | Path | None = None) -> None:
        import ray

        self.config = config or ShardedConfig()
        self.spec = corpus if isinstance(corpus, CorpusSpec) else CorpusSpec.from_corpus(corpus)
        self._plan = [(int(i), int(n)) for i, n in plan]
        self._owns_ray = connect(address, num_cpus=None, working_dir=working_dir)
        need = self.config.workers * self.config.num_cpus
        have = float(ray.cluster_resources().get("CPU", 0.0))
        if need > have:  # an actor that cannot be placed would stall the stream forever
            self._release()
            raise ValueError(f"{self.config.workers} Ray workers x {self.config.num_cpus:g} "
                             f"CPU need {need:g} CPUs; the cluster has {have:g}")
        actor = ray.remote(CorpusWorker).options(
            num_cpus=self.config.num_cpus, max_restarts=self.config.max_restarts,
            max_task_retries=self.config.max_restarts)
        self._workers = [actor.remote(self.spec, self.config.threads)
                         for _ in range(self.config.workers)]
        self._pending: deque[tuple[int, int, Any]] = deque()
        self._next = 0  # position in the plan of the next block to submit
        self._closed = False
        self.blocks_served = 0

    def __enter__(self) -> ShardedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, index: int, size: int) -> Any:
        worker = self._workers[index % len(self._workers)]
        return worker.block.remote(index, size)

    def _fill(self) -> None:
        while len(self._pending) < self.config.in_flight and self._next < len(self._plan):
            index, size = self._plan[self._next]
            self._pending.append((index, size, self._submit(index, size)))
            self._next += 1

    def extend(self, plan: Iterable[tuple[int, int]]) -> None:
        """Append blocks to the plan and start simulating them (e.g. epochs added later)."""
        if self._closed:
            raise RuntimeError("ShardedSource is closed")
        self._plan.extend((int(i), int(n)) for i, n in plan)
        self._fill()

    def _restart_at(self, index: int, size: int) -> None:
        """Drop what is in flight and continue the plan from ``(index, size)``."""
        import ray

        for _, _, ref in self._pending:
            ray.cancel(ref)
        self._pending.clear()
        try:
            self._next = self._plan.index((index, size))
        except ValueError:
            self._next = len(self._plan)
            self._pending.append((index, size, self._submit(index, size)))

    def batch_at(self, index: int, size: int) -> Batch:
        """Block ``index`` of ``size`` windows, identical to ``Corpus.batch_at(index, size)``."""
        import ray

        if self._closed:
            raise RuntimeError("ShardedSource is closed")
        if not self._pending or self._pending[0][:2] != (index, size):
            self._restart_at(index, size)
        self._fill()
        _, _, ref = self._pending.popleft()
        arrays = ray.get(ref)
        self._fill()
        self.blocks_served += 1
        return _from_arrays(arrays)

    def worker_pids(self) -> list[int]:
        """Process ids of the live actors (tests kill one to see the stream survive)."""
        import ray

        return ray.get([w.pid.remote() for w in self._workers])

    def worker_cpu_seconds(self) -> list[float]:
        """CPU seconds each actor has used so far (answered after its queued blocks)."""
        import ray

        return ray.get([w.cpu_seconds.remote() for w in self._workers])

    def _release(self) -> None:
        """Shut down the Ray session if this source started it (and only then)."""
        import ray

        if self._owns_ray:
            self._owns_ray = False
            ray.shutdown()

    def close(self) -> None:
        if self._closed:
            return
        import ray

        self._closed = True
        for _, _, ref in self._pending:
            ray.cancel(ref)
        self._pending.clear()
        for worker in self._workers:
            ray.kill(worker)
        self._workers = []
        self._release()


@contextlib.contextmanager
def open_source(executor: str, corpus: Corpus, config: TrainConfig, *, address: str | None = None,
                workers: int = 2) -> Iterator[ShardedSource | None]:
    """The training source ``--executor`` names: ``None`` (the corpus itself) for
    ``local``, a :class:`ShardedSource` planned for ``config`` (a ``TrainConfig``) for
    ``ray``; closed on exit. Bad combinations and a missing ray are ``ValueError``s."""
    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r}: use {' or '.join(EXECUTORS)}")
    if executor == "local":
        if address is not None:
            raise ValueError("--address is for --executor ray")
        yield None
        return
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"--executor ray is not available here ({exc}); install the ray "
                         f"extra (pip install 'mmw[ray]') or use --executor local") from None
    # The whole run's plan: a resumed run's first request restarts the stream at its block.
    with ShardedSource(corpus, training_plan(config), ShardedConfig(workers=workers),
                       address=address) as source:
        yield source
