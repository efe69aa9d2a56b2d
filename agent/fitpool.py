"""Fits in worker processes, so that a search evaluates candidates side by side.

Why processes, and why this protocol: a fit is CPU-bound Python and torch dispatch, so
threads would share one interpreter lock. The workers are ``python -m agent.fitpool``
children that read one job per line on stdin (JSON: the candidate's model JSON, the data,
the known inputs' schedules and the fit settings) and answer ``done <id>`` on stdout once
the job's folder holds ``result.json`` (the fit, as the run folder records it) and, for a
hybrid, ``neural.safetensors``. Nothing crosses back as a pickle: the parent reads the
result like any run-folder file, under limits, and rebuilds the
:class:`~mechanistic.fit.FitResult` (same numbers: JSON floats round-trip exactly).

A worker that dies mid-fit (killed, out of memory) is a :class:`~agent.evaluate.FitFailure`
that says so, and the next job gets a fresh worker; the search never hangs on it.
"""

from __future__ import annotations

import json
import math
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from agent.evaluate import FitFailure, FitJob, run_fit_job
from mechanistic.data import ObservedData
from mechanistic.errors import UntrustedDataError
from mechanistic.fit import FitConfig, FitResult
from mechanistic.interventions import ControlSchedule
from mechanistic.serialize import model_from_json

__all__ = ["FitPool", "default_workers", "job_from_json", "job_to_json", "main"]

RESULT_FILE = "result.json"
WEIGHTS_FILE = "neural.safetensors"
RESULT_MAX_BYTES = 32 * 1024 * 1024
_DONE = re.compile(r"done (\d{1,12})")


def default_workers() -> int:
    """Fit workers for an interactive search: one per CPU this process may use, at most
    four (a search rarely has more candidates in flight than that)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


# ------------------------------------------------------------------ job as data
def _floats(values: Any) -> list[float | None]:
    return [None if not math.isfinite(float(v)) else float(v) for v in values]


def job_to_json(job: FitJob, job_id: int, folder: Path) -> str:
    """One line of JSON: what a worker needs to run ``job`` and where to put the result."""
    data = job.data
    return json.dumps({
        "id": job_id, "folder": str(folder), "model": job.model.to_json(indent=None),
        "data": {"t": [float(x) for x in data.t], "time_name": data.time_name,
                 "source": data.source, "columns": list(data.columns),
                 "values": {n: _floats(data.values[n]) for n in data.columns}},
        "train_until": job.train_until,
        "controls": {n: {"times": [None if t == -math.inf else t for t in s.times],
                         "values": list(s.values)} for n, s in job.controls.items()},
        "config": job.config.to_dict(),
    }, allow_nan=False)


def job_from_json(line: str) -> tuple[int, Path, FitJob]:
    """The worker's side of :func:`job_to_json`."""
    raw = json.loads(line)
    d = raw["data"]
    values = {n: [math.nan if v is None else v for v in d["values"][n]] for n in d["columns"]}
    data = ObservedData(d["t"], values, time_name=d["time_name"], source=d["source"])
    controls = {n: ControlSchedule(tuple(-math.inf if t is None else t for t in s["times"]),
                                   tuple(s["values"])) for n, s in raw["controls"].items()}
    job = FitJob(model_from_json(raw["model"]), data, raw["train_until"], controls,
                 FitConfig.from_dict(raw["config"]))
    return int(raw["id"]), Path(raw["folder"]), job


# --------------------------------------------------------------- result as files
def _write_result(folder: Path, outcome: FitResult | FitFailure) -> None:
    from mechanistic.files import write_atomic, write_bytes_atomic

    if isinstance(outcome, FitFailure):
        body = {"ok": False, **outcome.to_dict()}
    else:
        body = {"ok": True, "fit": outcome.to_dict()}
        if outcome.neural_state:
            from safetensors.torch import save

            write_bytes_atomic(folder / WEIGHTS_FILE, save(
                {k: v.contiguous() for k, v in outcome.neural_state.items()}))
    write_atomic(folder / RESULT_FILE, json.dumps(body, allow_nan=False))


_FLOAT_FIELDS = {"log_likelihood", "aic", "bic", "wall_time", "t0"}
_OPTIONAL_FLOAT = {"validation_log_likelihood", "validation_error", "train_until"}


def _read_result(folder: Path, job: FitJob) -> FitResult | FitFailure:
    """The worker's answer, read as untrusted data and rebuilt into a FitResult."""
    from mechanistic.untrusted import parse_json, read_inside

    try:
        raw = parse_json(read_inside(folder, RESULT_FILE, "fit worker result",
                                     RESULT_MAX_BYTES), "fit worker result")
        if not isinstance(raw, dict) or not isinstance(raw.get("ok"), bool):
            raise UntrustedDataError("fit worker result: not an object with 'ok'")
        if not raw["ok"]:
            return FitFailure(str(raw.get("type", "Error"))[:200],
                              str(raw.get("message", ""))[:4000],
                              str(raw.get("traceback", ""))[:8000])
        return _fit_result(raw.get("fit"), folder, job)
    except (UntrustedDataError, FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        return FitFailure("FitWorkerError", f"the fit worker's result is unusable: {exc}")


def _fit_result(fit: Any, folder: Path, job: FitJob) -> FitResult:
    from mechanistic.simulate import compile_model
    from mechanistic.untrusted import read_inside

    names = [f.name for f in fields(FitResult) if f.name not in
             ("neural_state", "compiled", "controls")]
    if not isinstance(fit, dict) or set(fit) != set(names):
        raise UntrustedDataError("fit worker result: the fit's fields are not a FitResult's")
    given = dict(fit)
    for name in _FLOAT_FIELDS:
        given[name] = math.nan if given[name] is None else float(given[name])
    for name in _OPTIONAL_FLOAT:
        given[name] = None if given[name] is None else float(given[name])
    given["start_losses"] = [math.inf if x is None else float(x)
                             for x in given["start_losses"]]
    given["params"] = {str(k): float(v) for k, v in given["params"].items()}
    compiled = compile_model(job.model, seed=job.config.seed)
    state: dict[str, Any] = {}
    if job.model.neural_:
        from safetensors.torch import load

        state = load(read_inside(folder, WEIGHTS_FILE, "fit worker weights", RESULT_MAX_BYTES))
        compiled.neural.load_state_dict(state)
        state = {k: v.detach().clone() for k, v in compiled.neural.state_dict().items()}
    return FitResult(**given, neural_state=state, compiled=compiled,
                     controls=dict(job.controls) or None)


# ----------------------------------------------------------------------- pool
@dataclass
class _Ticket:
    id: int
    job: FitJob
    folder: Path
    outcome: FitResult | FitFailure | None = None
    worker: int | None = None


class FitPool:
    """``workers`` fit processes; :meth:`submit` queues a job, :meth:`result` waits for
    one (dispatching the queue meanwhile), :meth:`close` stops them all."""

    def __init__(self, workers: int) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"a fit pool needs at least one worker, got {workers!r}")
        self.size = workers
        self._procs: list[subprocess.Popen[str] | None] = [None] * workers
        self._busy: list[_Ticket | None] = [None] * workers
        self._queue: deque[_Ticket] = deque()
        self._next = 0
        self._root = Path(tempfile.mkdtemp(prefix="mmw-fits-"))

    # ------------------------------------------------------------- public
    def submit(self, job: FitJob) -> _Ticket:
        self._next += 1
        folder = self._root / str(self._next)
        folder.mkdir()
        ticket = _Ticket(self._next, job, folder)
        self._queue.append(ticket)
        self._dispatch()
        return ticket

    def result(self, ticket: _Ticket) -> FitResult | FitFailure:
        while ticket.outcome is None:
            self._dispatch()
            self._wait()
        shutil.rmtree(ticket.folder, ignore_errors=True)
        return ticket.outcome

    def discard(self, ticket: _Ticket) -> None:
        """A speculative job no longer wanted: dropped if queued, else left to finish."""
        if ticket in self._queue:
            self._queue.remove(ticket)
            shutil.rmtree(ticket.folder, ignore_errors=True)

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None and p.poll() is None]

    def close(self) -> None:
        for i, proc in enumerate(self._procs):
            if proc is not None:
                proc.kill()
                proc.wait()
                self._procs[i] = None
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> FitPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ workers
    def _start(self, i: int) -> subprocess.Popen[str]:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-m", "agent.fitpool"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self._procs[i] = proc
        return proc

    def _dispatch(self) -> None:
        for i in range(self.size):
            if self._busy[i] is None and self._queue:
                ticket = self._queue.popleft()
                proc = self._procs[i]
                if proc is None or proc.poll() is not None:
                    proc = self._start(i)
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(job_to_json(ticket.job, ticket.id, ticket.folder) + "\n")
                    proc.stdin.flush()
                except (BrokenPipeError, OSError):
                    self._died(i, ticket)
                    continue
                ticket.worker = i
                self._busy[i] = ticket

    def _wait(self) -> None:
        busy = [(i, self._procs[i]) for i in range(self.size) if self._busy[i] is not None]
        if not busy:
            return
        with selectors.DefaultSelector() as sel:
            for i, proc in busy:
                assert proc is not None and proc.stdout is not None
                sel.register(proc.stdout, selectors.EVENT_READ, i)
            for key, _ in sel.select():
                i = key.data
                ticket = self._busy[i]
                assert ticket is not None
                line = key.fileobj.readline()  # type: ignore[union-attr]
                match = _DONE.fullmatch(line.strip())
                if not line:
                    self._died(i, ticket)
                elif match and int(match.group(1)) == ticket.id:
                    ticket.outcome = _read_result(ticket.folder, ticket.job)
                    self._busy[i] = None
                else:
                    self._died(i, ticket, f"it wrote {line.strip()[:80]!r} instead of a result")

    def _died(self, i: int, ticket: _Ticket, why: str = "") -> None:
        proc = self._procs[i]
        code = None
        if proc is not None:
            proc.kill()
            code = proc.wait()
        self._procs[i] = None
        self._busy[i] = None
        how = (f"killed by signal {-code}" if code is not None and code < 0 else
               f"exit status {code}") if code is not None else "it could not be started"
        ticket.outcome = FitFailure(
            "FitWorkerDied", f"the fit worker stopped before the fit ended ({why or how}); "
                             f"the fit may need more memory or time than this machine gives")


# --------------------------------------------------------------------- worker
def main() -> None:
    """The worker loop: one job per line in, ``done <id>`` per line out."""
    import torch

    torch.set_num_threads(1)
    for line in sys.stdin:
        if not line.strip():
            continue
        job_id, folder, job = job_from_json(line)
        _write_result(folder, run_fit_job(job))
        sys.stdout.write(f"done {job_id}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
