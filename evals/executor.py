"""Running benchmark jobs: the ``Job``, the ``Executor`` seam, and the local process pool.

A benchmark is many independent (task, agent, seed) jobs. Each one is described by a
``Job`` (a frozen, picklable dataclass) and executed by a top-level function
(``evals.runner.run_job``) that returns a plain JSON-able result dict. *Where* the
function runs is the executor's business: here, one fresh process per job on this
machine; issue 8 adds a Ray executor (``evals/executor_ray.py``) for clusters.

The contract an executor keeps (``Executor.run``):

* every job yields exactly one ``(job, result)`` pair, in the order jobs *finish*;
* a job that runs past ``timeout_s(job)`` is stopped and yields
  ``failure_result(job, "timeout", ...)``;
* a job whose worker dies or whose function raises yields
  ``failure_result(job, "error", reason)``: a failure is a row in the leaderboard, never
  an exception that ends the batch;
* the executor writes nothing: the runner stores every yielded result (so results land
  on the driver's disk even when workers run on other machines).

``LocalProcessExecutor`` runs each job in its own *spawned* process (no ``fork`` after
torch has started its thread pools), in a new session, and kills the whole process tree
(the worker and everything it started, sandbox processes included) on timeout.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from evals.agents import Budget

__all__ = ["STATUSES", "Executor", "Job", "LocalProcessExecutor", "failure_result",
           "kill_tree"]

STATUSES = ("ok", "invalid", "error", "timeout")
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Job:
    """One (task, agent, seed) run: everything a worker process needs, nothing it must share.

    ``out`` is the run folder (the worker writes ``OUT/results/<key>.json`` and its scratch
    under ``OUT/work/<key>/``); ``llm`` holds the LLM settings as a plain dict so the job
    pickles without langchain; ``tasks_dir`` loads tasks from JSON files instead of the
    shipped suite.
    """

    task: str
    agent: str
    seed: int
    budget: Budget
    out: str
    llm: dict[str, Any] | None = field(default=None, compare=False)
    tasks_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("task", "agent"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _KEY_PART.match(value):
                raise ValueError(f"Job.{name}: {value!r} must be a non-empty name of letters, "
                                 f"digits, '.', '-' or '_' (it names a file)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Job.seed: {self.seed!r} must be a non-negative integer")
        if not isinstance(self.out, str) or not self.out:
            raise ValueError("Job.out: must be the run folder's path as a string")
        seconds = getattr(self.budget, "max_seconds", None)
        if not isinstance(seconds, int | float) or not seconds > 0:
            raise ValueError(f"Job.budget: max_seconds must be positive, got {seconds!r}")

    @property
    def key(self) -> str:
        """File-name key of the job's result: ``task__agent__s<seed>``."""
        return f"{self.task}__{self.agent}__s{self.seed}"

    def describe(self) -> dict[str, Any]:
        """The job as JSON-able data (for result files and the manifest)."""
        return {"key": self.key, "task": self.task, "agent": self.agent, "seed": self.seed,
                "budget": self.budget.to_dict()}


def failure_result(job: Job, status: str, reason: str, wall_s: float | None = None,
                   detail: str | None = None) -> dict[str, Any]:
    """The result of a job that produced no outcome (``error`` or ``timeout``).

    Same shape as a scored result so the leaderboard counts it: not valid, every score
    ``None``. Executors use it for what happens *outside* the job function (a killed or
    crashed worker); ``run_job`` uses it for exceptions inside.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    result: dict[str, Any] = {**job.describe(), "status": status, "reason": reason,
                              "wall_s": None if wall_s is None else round(float(wall_s), 3),
                              "metrics": {"valid": False}, "series": None, "outcome": None}
    if detail:
        result["detail"] = detail
    return result


class Executor(Protocol):
    """Runs ``fn`` on each job somewhere and yields ``(job, result)`` as jobs finish.

    ``fn`` is a picklable top-level function (``evals.runner.run_job``); ``timeout_s(job)``
    is the job's wall-clock limit in seconds. See the module docstring for the contract.
    """

    def run(self, fn: Callable[[Job], dict[str, Any]], jobs: Sequence[Job],
            timeout_s: Callable[[Job], float]) -> Iterator[tuple[Job, dict[str, Any]]]: ...


# --------------------------------------------------------------------------- local processes
def _child_main(fn: Callable[[Job], dict[str, Any]], job: Job, conn: Connection,
                threads: int) -> None:
    """Worker process body: own session (so the tree can be killed), bounded threads."""
    os.setsid()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        message: tuple[str, Any] = ("result", fn(job))
    except BaseException as exc:  # the parent turns this into an "error" row
        message = ("raised", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    try:
        conn.send(message)
    except Exception as exc:  # an unpicklable result
        conn.send(("raised", f"result could not be sent: {type(exc).__name__}: {exc}", ""))
    conn.close()


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids of every process (Linux ``/proc``; empty elsewhere)."""
    tree: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return tree
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        # The command name may hold spaces or parentheses: ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1:
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _descendants(pid: int) -> list[int]:
    tree = _children_map()
    found, stack = [], [pid]
    while stack:
        for child in tree.get(stack.pop(), []):
            if child not in found:
                found.append(child)
                stack.append(child)
    return found


def _signal(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, its process group and every descendant.

    Descendants are found through ``/proc`` because sandboxed code runs in sessions of
    its own (outside the worker's process group). The tree is frozen with SIGSTOP first
    so nothing forks between the scan and the kill. Container sandboxes are stopped by
    their own wall-clock limit, not here.
    """
    tree = [pid, *_descendants(pid)]
    _signal(tree, signal.SIGSTOP)
    tree += [p for p in _descendants(pid) if p not in tree]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _signal(tree, signal.SIGKILL)


@dataclass
class _Running:
    job: Job
    process: Any
    conn: Connection
    started: float
    deadline: float


@dataclass(frozen=True)
class LocalProcessExecutor:
    """Up to ``workers`` jobs at once, each in a fresh spawned process on this machine.

    ``threads`` caps each worker's BLAS/OpenMP threads (default: the machine's cores
    shared among the workers) so parallel jobs do not oversubscribe the CPU.
    """

    workers: int = 1
    threads: int | None = None
    start_method: str = "spawn"

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if self.threads is not None and (not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        if self.start_method not in ("spawn", "forkserver"):
            raise ValueError("start_method must be spawn or forkserver (fork is unsafe "
                             "once torch has started threads)")

    def _threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def _start(self, ctx: Any, fn: Callable[[Job], dict[str, Any]], job: Job,
               timeout: float) -> _Running:
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_child_main, args=(fn, job, writer, self._threads()),
                              name=f"mmw-bench-{job.key}")
        process.start()
        writer.close()  # only the child holds the write end: EOF tells us it died
        now = time.monotonic()
        return _Running(job, process, reader, now, now + timeout)

    def run(self, fn: Callable[[Job], dict[str, Any]], jobs: Sequence[Job],
            timeout_s: Callable[[Job], float]) -> Iterator[tuple[Job, dict[str, Any]]]:
        ctx = mp.get_context(self.start_method)
        pending = deque(jobs)
        running: list[_Running] = []
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    job = pending.popleft()
                    running.append(self._start(ctx, fn, job, float(timeout_s(job))))
                now = time.monotonic()
                wait_for = max(0.0, min(r.deadline for r in running) - now)
                wait([r.conn for r in running] + [r.process.sentinel for r in running],
                     timeout=wait_for)
                for r in list(running):
                    result = self._collect(r)
                    if result is not None:
                        running.remove(r)
                        yield r.job, result
        finally:
            for r in running:  # the consumer stopped early (Ctrl-C, an error): no orphans
                kill_tree(r.process.pid)
                r.process.join(1)
                r.conn.close()

    def _collect(self, r: _Running) -> dict[str, Any] | None:
        """The job's result if it has one now (finished, crashed or past its deadline)."""
        wall = time.monotonic() - r.started
        if r.conn.poll():
            try:
                message = r.conn.recv()
            except (EOFError, OSError):
                message = None
            if message is not None:
                self._reap(r)
                if message[0] == "result" and isinstance(message[1], dict):
                    return message[1]
                if message[0] == "result":
                    return failure_result(r.job, "error", "the job function returned "
                                          f"{type(message[1]).__name__}, not a dict", wall)
                return failure_result(r.job, "error", message[1], wall, detail=message[2])
        if not r.process.is_alive():
            self._reap(r)
            return failure_result(r.job, "error", _death_reason(r.process.exitcode), wall)
        if time.monotonic() >= r.deadline:
            kill_tree(r.process.pid)
            self._reap(r)
            return failure_result(r.job, "timeout", f"killed after {wall:.0f} s (limit "
                                  f"{r.deadline - r.started:.0f} s)", wall)
        return None

    @staticmethod
    def _reap(r: _Running) -> None:
        r.process.join(10)
        if r.process.is_alive():  # sent its result but hangs on exit (stray threads)
            kill_tree(r.process.pid)
            r.process.join(5)
        else:  # the worker is gone; anything it left behind in its session goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(r.process.pid, signal.SIGKILL)
        r.conn.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker process died: killed by {name}{hint}"
    return f"worker process exited with status {exitcode} without a result"
