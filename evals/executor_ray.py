"""Benchmark jobs as Ray tasks: the same ``Executor`` contract, on one machine or a cluster.

:class:`RayExecutor` submits each :class:`~evals.executor.Job` as a Ray task reserving
``num_cpus`` CPUs, and yields ``(job, result)`` as tasks finish, exactly as
:class:`~evals.executor.LocalProcessExecutor` does, so the runner, the resume logic and
the leaderboard do not know which one ran. Results travel back as plain dicts and the
runner writes them on the driver's disk: workers on other machines need no shared
filesystem for results.

Failures and where they are handled:

* **a worker dies** (OOM killer, a node lost, SIGKILL): Ray runs the task again, up to
  ``max_retries`` times. Jobs are pure functions of (task, agent, seed, budget), so a
  retry gives the result the lost attempt would have; finished jobs were already yielded
  and are never rerun. Past the retries the job is an ``error`` row.
* **a job runs too long**: with ``isolate`` (the default) the task runs the job through a
  one-job :class:`~evals.executor.LocalProcessExecutor` on whichever node it landed, so
  the clock starts when the job starts and the whole process tree (sandboxed code
  included) is killed at the limit: the same ``timeout`` row as a local run. The driver
  keeps a backstop on top: a task not back ``timeout + start_grace_s`` after it was
  submitted is cancelled with ``ray.cancel(force=True)`` (its worker process is killed)
  and reported as ``timeout``. Without ``isolate`` the backstop is the only limit (the
  job runs inside the Ray worker, one process fewer per job).
* **the job function raises**: an ``error`` row with the exception (never retried:
  an exception is a property of the job, not of the machine).

At most ``workers`` tasks are in flight, and never more than the cluster's CPUs (counted
when the run starts) over ``num_cpus``, so a submitted task starts at once and the
backstop measures run time, not queueing. (An autoscaling cluster therefore grows only to
what it had at the start; start it at the size you want.)

Ray is imported when :meth:`RayExecutor.run` starts; importing this module costs nothing.
Connecting: ``address=None`` starts a private local cluster whose workers import this
checkout; ``address="auto"`` / ``"HOST:6379"`` / ``"ray://HOST:10001"`` joins an existing
one, whose nodes need the same mmw installed, or ``working_dir`` set to this checkout so
Ray uploads it to every worker (see :func:`sgnn.sharded.connect`).
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from evals.executor import Job, LocalProcessExecutor, failure_result, kill_tree

__all__ = ["RayExecutor"]


def _run_isolated(fn: Callable[[Job], dict[str, Any]], job: Job, timeout: float,
                  threads: int) -> dict[str, Any]:
    """Ray task body with isolation: the job in a child process, killed at its limit.

    The one-job executor runs in a thread while this (the task's main) thread waits in
    short steps: Ray's gentle cancel raises KeyboardInterrupt here, between steps, and
    the job's process tree is killed before the task ends (a forced cancel would kill
    only the Ray worker and orphan the job, which runs in a session of its own).
    """
    found: list[dict[str, Any]] = []

    def work() -> None:
        local = LocalProcessExecutor(workers=1, threads=threads)
        found.extend(result for _, result in local.run(fn, [job], lambda _job: timeout))

    thread = threading.Thread(target=work, name=f"mmw-job-{job.key}", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.25)
    except BaseException:
        for child in multiprocessing.active_children():
            kill_tree(child.pid)
        raise
    return found[0] if found else failure_result(job, "error", "the local executor "
                                                 "yielded no result")


def _run_direct(fn: Callable[[Job], dict[str, Any]], job: Job, timeout: float,
                threads: int) -> dict[str, Any]:
    """Ray task body without isolation: the job runs in the Ray worker itself."""
    return fn(job)


@dataclass
class _Flight:
    job: Job
    ref: Any
    submitted: float
    deadline: float


@dataclass(frozen=True)
class RayExecutor:
    """Jobs as Ray tasks with per-task resources, retries on lost workers and time limits.

    ``address`` selects the cluster (``None``: start a local one with ``local_cpus``
    CPUs, all of this machine's by default); ``workers`` caps tasks in flight;
    ``num_cpus`` is what each task reserves (and the BLAS threads it may use);
    ``max_retries`` is how often a task whose worker died is run again;
    ``start_grace_s`` is the backstop's allowance for getting a task started;
    ``working_dir`` ships a checkout to a remote cluster's workers.
    """

    address: str | None = None
    workers: int | None = None
    num_cpus: float = 1.0
    max_retries: int = 3
    isolate: bool = True
    start_grace_s: float = 60.0
    local_cpus: int | None = None
    working_dir: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool)
                                         or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ValueError(f"RayExecutor.workers must be a positive integer or None, "
                             f"got {self.workers!r}")
        if not (isinstance(self.num_cpus, int | float) and math.isfinite(self.num_cpus)
                and self.num_cpus > 0):
            raise ValueError(f"RayExecutor.num_cpus must be > 0, got {self.num_cpus!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) \
                or self.max_retries < 0:
            raise ValueError(f"RayExecutor.max_retries must be an integer >= 0, "
                             f"got {self.max_retries!r}")
        if not (isinstance(self.start_grace_s, int | float) and self.start_grace_s >= 0):
            raise ValueError(f"RayExecutor.start_grace_s must be >= 0, "
                             f"got {self.start_grace_s!r}")
        if self.local_cpus is not None and (not isinstance(self.local_cpus, int)
                                            or self.local_cpus < 1):
            raise ValueError(f"RayExecutor.local_cpus must be a positive integer or None, "
                             f"got {self.local_cpus!r}")

    def _capacity(self, ray: Any) -> int:
        """Tasks in flight: ``workers``, but never more than the cluster can start at once
        (a queued task would spend its backstop allowance waiting)."""
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        fits = max(1, int(cpus // self.num_cpus))
        return fits if self.workers is None else min(self.workers, fits)

    def run(self, fn: Callable[[Job], dict[str, Any]], jobs: Sequence[Job],
            timeout_s: Callable[[Job], float]) -> Iterator[tuple[Job, dict[str, Any]]]:
        import ray

        from sgnn.sharded import connect

        owns = connect(self.address, num_cpus=self.local_cpus, working_dir=self.working_dir)
        body = _run_isolated if self.isolate else _run_direct
        task = ray.remote(body).options(num_cpus=self.num_cpus, max_retries=self.max_retries,
                                        retry_exceptions=False)
        threads = max(1, int(self.num_cpus))
        pending = deque(jobs)
        flying: dict[Any, _Flight] = {}
        try:
            capacity = self._capacity(ray)
            while pending or flying:
                while pending and len(flying) < capacity:
                    job = pending.popleft()
                    limit = float(timeout_s(job))
                    now = time.monotonic()
                    ref = task.remote(fn, job, limit, threads)
                    flying[ref] = _Flight(job, ref, now, now + limit + self.start_grace_s)
                wait_for = max(0.0, min(f.deadline for f in flying.values()) - time.monotonic())
                done, _ = ray.wait(list(flying), num_returns=1, timeout=wait_for)
                for ref in done:
                    flight = flying.pop(ref)
                    yield flight.job, self._collect(ray, flight)
                now = time.monotonic()
                for ref, flight in list(flying.items()):
                    if now >= flight.deadline:
                        ray.cancel(ref, force=True, recursive=True)
                        del flying[ref]
                        wall = now - flight.submitted
                        yield flight.job, failure_result(
                            flight.job, "timeout", f"Ray task cancelled after {wall:.0f} s "
                            f"(limit {flight.deadline - flight.submitted:.0f} s including "
                            f"{self.start_grace_s:.0f} s to start)", wall)
        finally:
            self._stop(ray, list(flying))
            if owns:
                ray.shutdown()

    def _stop(self, ray: Any, refs: list[Any]) -> None:
        """The consumer stopped early (Ctrl-C, an error): stop what still runs.

        Isolated tasks are first interrupted gently (Ray raises KeyboardInterrupt in the
        task), so the one-job executor inside kills its job's process tree; a forced
        cancel would kill the Ray worker and orphan that tree.
        """
        if not refs:
            return
        if self.isolate:
            for ref in refs:
                ray.cancel(ref)
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=10.0)
        for ref in refs:
            ray.cancel(ref, force=True, recursive=True)

    def _collect(self, ray: Any, flight: _Flight) -> dict[str, Any]:
        """The task's result dict, or the failure that replaced it, as data."""
        wall = time.monotonic() - flight.submitted
        try:
            result = ray.get(flight.ref)
        except ray.exceptions.RayTaskError as exc:  # the job function raised
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return failure_result(flight.job, "error", f"{type(cause).__name__}: {cause}",
                                  wall, detail=str(exc))
        except ray.exceptions.TaskCancelledError as exc:  # cancelled outside this executor
            return failure_result(flight.job, "error", f"Ray task cancelled: {exc}", wall)
        except ray.exceptions.RayError as exc:  # worker or node lost beyond the retries
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return failure_result(flight.job, "error", f"Ray worker lost after "
                                  f"{self.max_retries} retries: {type(exc).__name__}: "
                                  f"{first}", wall, detail=str(exc))
        if not isinstance(result, dict):
            return failure_result(flight.job, "error", f"the job function returned "
                                  f"{type(result).__name__}, not a dict", wall)
        return result
