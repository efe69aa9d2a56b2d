"""Job functions for the Ray executor tests, importable by module name in Ray workers.

The tests put this folder on the workers' PYTHONPATH, so these functions are pickled by
reference (as ``evals.runner.run_job`` is) and also survive the extra hop into the
one-job child process an isolated Ray task starts.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.executor import Job


def _in_ray_worker() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def seeded(job: Job) -> dict[str, Any]:
    """A stand-in for ``run_job``: scores that are a pure function of the job."""
    rng = np.random.default_rng([job.seed, len(job.task), len(job.agent)])
    skill = float(rng.uniform(0.2, 2.0))
    return {**job.describe(), "domain": "test", "status": "ok", "reason": "",
            "wall_s": 0.01, "metrics": {"valid": True, "forecast_skill": skill,
                                        "cf_error": float(rng.uniform(0, 1))},
            "series": None, "outcome": None, "pid": os.getpid()}


def crash_once(job: Job) -> dict[str, Any]:
    """SIGKILL the Ray worker running this job the first time (a marker file remembers).

    Inside an isolated task the job runs in a child of the Ray worker, so the worker is
    the parent; without isolation it is this very process.
    """
    marker = Path(job.out) / f"crashed-{job.key}"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        victim = os.getpid() if _in_ray_worker() else os.getppid()
        os.kill(victim, signal.SIGKILL)
        os._exit(3)  # the child of a killed worker reports nothing
    return seeded(job)


def sleepy(job: Job) -> dict[str, Any]:
    """Runs far past any test's time limit; leaves its process id in ``OUT/pid-<key>``."""
    (Path(job.out) / f"pid-{job.key}").write_text(str(os.getpid()))
    time.sleep(120)
    return seeded(job)


def oracle_fast(job: Job) -> dict[str, Any]:
    """The oracle's jobs finish at once, everyone else's never (within a test)."""
    return seeded(job) if job.agent == "oracle" else sleepy(job)


def raises(job: Job) -> dict[str, Any]:
    raise RuntimeError(f"bad job {job.key}")
