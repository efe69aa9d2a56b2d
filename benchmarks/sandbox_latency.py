"""Median per-run latency of a trivial module: in-process, local backend, container cold/warm.

    python benchmarks/sandbox_latency.py --json

Each sandboxed figure is the full runner path (``sandbox.runner.run_model_module``:
write the module and the runner into a fresh work dir, start the interpreter,
execute, read the result file back). The trivial module declares no model (so
it imports nothing); a second set of figures runs a small SEIR DSL module,
which is dominated by importing sympy in the fresh interpreter.

Targets (from the sandbox issue): local <= 50 ms, container warm <= 100 ms,
container cold <= 1.5 s. ``local`` is a fresh bubblewrap sandbox per run;
``local_warm`` and ``container_warm`` keep one sandbox whose guest preloads
mechanistic and forks each run; ``local_prestarted`` uses a fresh sandbox per
run started ahead of time (measured with a 1 s idle gap between runs, as in
the agent loop where checks and fitting separate runs). Unavailable backends
are reported as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRIVIAL = "x = 1\n"
SEIR = """\
from mechanistic import Model, LogUniform, Uniform
m = Model("SEIR", time_unit="day")
S, E, I, R = m.states("S E I R")
beta = m.param("beta", LogUniform(0.05, 3.0))
gamma = m.param("gamma", Uniform(1/14, 1/3))
sigma = m.param("sigma", Uniform(1/7, 1/2))
N = S + E + I + R
m.flow(S, E, beta * S * I / N)
m.flow(E, I, sigma * E)
m.flow(I, R, gamma * I)
m.init(S=1e6 - 10, E=0, I=10, R=0)
"""
TARGETS_MS = {"local": 50.0, "container_warm": 100.0, "container_cold": 1500.0}


def _median_ms(fn, n: int, warmup: int = 1) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "n": n}


def _in_process(source: str, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench_module.py"
        path.write_text(source)

        def once() -> None:
            spec = importlib.util.spec_from_file_location("bench_module", path)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)

        return _median_ms(once, n)


def _sandboxed(sb, source: str, n: int, warmup: int = 1, gap_s: float = 0.0) -> dict[str, Any]:
    """Median of ``run_model_module``; ``gap_s`` idles (untimed) before each run."""
    from sandbox.runner import run_model_module

    def once() -> None:
        r = run_model_module(source, sandbox=sb)
        if r.error is not None and r.error.kind not in ("no_model",):
            raise RuntimeError(r.error.render())

    if not gap_s:
        return _median_ms(once, n, warmup)
    times = []
    for i in range(n + warmup):
        time.sleep(gap_s)
        t = time.perf_counter()
        once()
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "n": n, "idle_gap_s": gap_s}


def measure(n: int, n_cold: int) -> dict[str, Any]:
    import os

    from sandbox.spec import SandboxError

    out: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                           "loadavg_1m_before": round(os.getloadavg()[0], 2),
                           "trivial": {}, "seir": {}}
    out["trivial"]["in_process"] = _in_process(TRIVIAL, n)
    out["seir"]["in_process"] = _in_process(SEIR, n)
    try:
        from sandbox.local import LocalConfig, LocalSandbox

        sb = LocalSandbox()
        out["local_mode"] = sb.mode
        out["trivial"]["local"] = _sandboxed(sb, TRIVIAL, n)
        out["seir"]["local"] = _sandboxed(sb, SEIR, max(3, n // 3))
        sb.close()
        if out["local_mode"] == "bwrap":
            warm_local = LocalSandbox(LocalConfig(warm=True))
            out["trivial"]["local_warm"] = _sandboxed(warm_local, TRIVIAL, n)
            out["seir"]["local_warm"] = _sandboxed(warm_local, SEIR, n)
            warm_local.close()
            # fresh sandbox per run, started ahead: measured with an idle gap between runs
            # (the agent checks and fits between runs); back to back it waits for the start
            spare = LocalSandbox(LocalConfig(warm=True, single_use=True))
            out["trivial"]["local_prestarted"] = _sandboxed(spare, TRIVIAL, max(5, n // 2),
                                                            gap_s=1.0)
            out["seir"]["local_prestarted"] = _sandboxed(spare, SEIR, max(5, n // 2), gap_s=1.0)
            spare.close()
    except SandboxError as exc:
        out["trivial"]["local"] = {"unavailable": str(exc)}
    try:
        from sandbox.container import ContainerConfig, ContainerSandbox

        cold = ContainerSandbox(ContainerConfig(warm=False))
        out["container_image"] = cold.image
        out["trivial"]["container_cold"] = _sandboxed(cold, TRIVIAL, n_cold)
        with ContainerSandbox(ContainerConfig(warm=True, image=cold.image),
                              client=cold.client) as warm:
            out["trivial"]["container_warm"] = _sandboxed(warm, TRIVIAL, n)
            out["seir"]["container_warm"] = _sandboxed(warm, SEIR, n)
    except SandboxError as exc:
        out["trivial"]["container_cold"] = {"unavailable": str(exc)}
        out["trivial"]["container_warm"] = {"unavailable": str(exc)}
    out["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    out["targets_ms"] = TARGETS_MS
    out["meets_targets"] = {
        k: (out["trivial"].get(k, {}).get("median_ms", float("inf")) <= v)
        for k, v in TARGETS_MS.items()
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("-n", type=int, default=15, help="runs per figure (default 15)")
    ap.add_argument("--n-cold", type=int, default=7, help="cold container runs (default 7)")
    args = ap.parse_args()
    res = measure(args.n, args.n_cold)
    if args.json:
        print(json.dumps(res))
        return
    for group in ("trivial", "seir"):
        print(f"{group} module:")
        for k, v in res[group].items():
            print(f"  {k:16s} {v.get('median_ms', v.get('unavailable'))}")


if __name__ == "__main__":
    main()
