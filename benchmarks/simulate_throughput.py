"""Throughput of the compiled batched simulator against a scipy per-trajectory loop.

SEIR, 100 days, daily output, 100,000 parameter sets (beta, sigma, gamma drawn from the
model's priors), RK4 with half-day steps fused by ``torch.compile``, in double precision
(``speedup``) and in single precision (``speedup_float32``). Baseline:
``scipy.integrate.odeint`` called once per trajectory, the way one would write it by
hand, measured in the same run on a subset and expressed as trajectories per second.
Every figure is a median over repeats; a speedup is a rate over the scipy loop's rate.
Accuracy of each method is reported against a tight ``solve_ivp`` reference on a few
parameter sets, so speed is not bought with error. Peak memory is measured in fresh
subprocesses streaming 1x and 4x the batch through ``iter_simulate`` to show working
memory stays bounded.

    python benchmarks/simulate_throughput.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import odeint, solve_ivp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mechanistic import LogUniform, Model, NegBinomial, Uniform  # noqa: E402
from mechanistic.simulate import RK4, compile_model  # noqa: E402

POPULATION = 1e6
T_EVAL = np.arange(0.0, 101.0)


def seir_model() -> Model:
    m = Model("SEIR benchmark", time_unit="day")
    s, e, i, r = m.states("S E I R")
    beta = m.param("beta", LogUniform(0.1, 1.5))
    sigma = m.param("sigma", Uniform(1 / 7, 1 / 2))
    gamma = m.param("gamma", Uniform(1 / 14, 1 / 3))
    rho = m.param("rho", Uniform(0.1, 1.0))
    phi = m.param("phi", LogUniform(1, 100))
    n = s + e + i + r
    m.flow(s, e, beta * s * i / n)
    m.flow(e, i, sigma * e)
    m.flow(i, r, gamma * i)
    m.init(S=POPULATION - 10, E=0, I=10, R=0)
    m.observe("cases", rho * sigma * e, noise=NegBinomial(phi))
    return m


def draw_params(model: Model, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: p.prior.sample(rng, n) for name, p in model.params_.items()}


def seir_rhs(y: np.ndarray, t: float, beta: float, sigma: float, gamma: float) -> list[float]:
    s, e, i, r = y
    infection = beta * s * i / (s + e + i + r)
    return [-infection, infection - sigma * e, sigma * e - gamma * i, gamma * i]


Y0 = np.array([POPULATION - 10, 0.0, 10.0, 0.0])


def scipy_loop(params: dict[str, np.ndarray], n: int) -> np.ndarray:
    out = np.empty((n, T_EVAL.size, 4))
    for k in range(n):
        out[k] = odeint(seir_rhs, Y0, T_EVAL,
                        args=(params["beta"][k], params["sigma"][k], params["gamma"][k]))
    return out


def reference(params: dict[str, np.ndarray], n: int) -> np.ndarray:
    out = np.empty((n, T_EVAL.size, 4))
    for k in range(n):
        sol = solve_ivp(lambda t, y, k=k: seir_rhs(y, t, params["beta"][k], params["sigma"][k],
                                                   params["gamma"][k]),
                        (0, 100), Y0, t_eval=T_EVAL, method="DOP853", rtol=1e-12, atol=1e-6)
        out[k] = sol.y.T
    return out


def rel_error(values: np.ndarray, ref: np.ndarray) -> float:
    scale = np.abs(ref).max(axis=1, keepdims=True)  # per trajectory and state
    return float((np.abs(values - ref) / scale).max())


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def stream(model: Model, batch: int, solver: RK4) -> int:
    compiled = compile_model(model)
    count = 0
    for part in compiled.iter_simulate(draw_params(model, batch, 1), T_EVAL, solver=solver):
        count += int(part.ok.sum())
    return count


def peak_rss_mib(batch: int, dt: float) -> float:
    """Peak resident memory of a fresh process streaming ``batch`` trajectories."""
    code = (
        f"import resource, sys; sys.path.insert(0, {str(ROOT)!r}); "
        "from benchmarks.simulate_throughput import stream, seir_model; "
        "from mechanistic.simulate import RK4; "
        f"stream(seir_model(), {batch}, RK4(dt={dt!r})); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--scipy-n", type=int, default=300, help="trajectories for the scipy loop")
    parser.add_argument("--dt", type=float, default=0.5, help="RK4 step (days)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the subprocess RSS runs")
    args = parser.parse_args()

    model = seir_model()
    params = draw_params(model, args.batch, seed=0)
    tensors = {k: torch.as_tensor(v) for k, v in params.items()}
    compiled_model = compile_model(model)

    n_check = 20
    ref = reference(params, n_check)
    scipy_times = timed(lambda: scipy_loop(params, args.scipy_n), args.repeats)
    scipy_rate = args.scipy_n / statistics.median(scipy_times)
    scipy_err = rel_error(scipy_loop(params, n_check), ref)

    def run(solver: RK4) -> int:
        done = 0
        for part in compiled_model.iter_simulate(tensors, T_EVAL, solver=solver):
            done += part.states.shape[0]
        return done

    eager = RK4(dt=args.dt)
    fused = RK4(dt=args.dt, compiled=True)
    eager_times = timed(lambda: run(eager), args.repeats)
    warmup_start = time.perf_counter()
    run(fused)  # first call compiles the fused step (cached by inductor afterwards)
    compile_seconds = time.perf_counter() - warmup_start
    fused_times = timed(lambda: run(fused), args.repeats)

    check = {k: v[:n_check] for k, v in tensors.items()}
    eager_err = rel_error(compiled_model.simulate(check, T_EVAL, solver=eager).states.numpy(), ref)
    fused_err = rel_error(compiled_model.simulate(check, T_EVAL, solver=fused).states.numpy(), ref)

    # The same fused simulator in single precision (what a training corpus needs).
    single_model = compile_model(model, dtype=torch.float32)
    single = {k: v.to(torch.float32) for k, v in tensors.items()}

    def run_single() -> int:
        done = 0
        for part in single_model.iter_simulate(single, T_EVAL, solver=fused):
            done += part.states.shape[0]
        return done

    run_single()  # compile for float32
    single_times = timed(run_single, args.repeats)
    single_check = {k: v[:n_check] for k, v in single.items()}
    single_err = rel_error(single_model.simulate(single_check, T_EVAL, solver=fused)
                           .states.double().numpy(), ref)

    eager_rate = args.batch / statistics.median(eager_times)
    fused_rate = args.batch / statistics.median(fused_times)
    single_rate = args.batch / statistics.median(single_times)
    result = {
        "benchmark": "simulate_throughput",
        "model": "SEIR, 100 days, daily output",
        "batch": args.batch,
        "rk4_dt_days": args.dt,
        "scipy_odeint_loop_traj_per_s": round(scipy_rate, 1),
        "torch_eager_traj_per_s": round(eager_rate, 1),
        "torch_compiled_traj_per_s": round(fused_rate, 1),
        "speedup": round(fused_rate / scipy_rate, 1),
        "speedup_eager": round(eager_rate / scipy_rate, 1),
        "torch_compiled_float32_traj_per_s": round(single_rate, 1),
        "speedup_float32": round(single_rate / scipy_rate, 1),
        "compile_seconds_first_call": round(compile_seconds, 1),
        "max_rel_error_vs_reference": {
            "scipy_odeint": scipy_err, "torch_eager": eager_err, "torch_compiled": fused_err,
            "torch_compiled_float32": single_err,
        },
        "seconds": {
            "scipy_median_for_n": round(statistics.median(scipy_times), 3),
            "scipy_n": args.scipy_n,
            "eager_median": round(statistics.median(eager_times), 3),
            "compiled_median": round(statistics.median(fused_times), 3),
        },
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if not args.no_memory:
        small, large = args.batch // 4, args.batch
        rss_small = peak_rss_mib(small, args.dt)
        rss_large = peak_rss_mib(large, args.dt)
        result["peak_rss_mib_streaming"] = {str(small): round(rss_small, 1),
                                            str(large): round(rss_large, 1),
                                            "ratio": round(rss_large / rss_small, 2)}
    result["self_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:34s} {value}")


if __name__ == "__main__":
    main()
