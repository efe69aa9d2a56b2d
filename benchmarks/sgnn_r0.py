"""Transmissibility from the first weeks of an outbreak: SGNN against maximum likelihood.

SEIR (``sgnn/examples.py``) with under-reporting (reporting fraction 0.1-1, drifting),
negative binomial noise, a reporting delay, weekday effects and missing days; four weeks
of reported cases. R0 = beta / gamma. The SGNN's estimate is the ratio of its posterior
medians of beta and gamma; the MLE's is the ratio at the best of several batched
multi-start fits (``sgnn/diagnostics.py``) on the same held-out series. Reported: MSE of
both (goal: SGNN <= 0.5 x MLE), and the SGNN's parameter interval coverage.

    python benchmarks/sgnn_r0.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgnn.corpus import Corpus, CorpusConfig  # noqa: E402
from sgnn.diagnostics import batched_mle, calibration, held_out  # noqa: E402
from sgnn.examples import seir  # noqa: E402
from sgnn.train import TrainConfig, load_checkpoint, network_config, train  # noqa: E402


def run(simulations: int, epochs: int, series: int, mle_steps: int, mle_starts: int,
        seed: int, log: bool) -> dict:
    torch.set_num_threads(1)
    cfg = CorpusConfig(n_context=28, min_context=28, horizon=7, max_offset=0, max_delay=2,
                       drift_sd=0.03, weekday_sd=0.1, missing_rate=0.05, seed=seed)
    corpus = Corpus([seir()], cfg)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(corpus, tmp, TrainConfig(simulations=simulations, epochs=epochs,
                                                batch_size=256, held_out=min(2000, simulations),
                                                seed=seed,
                                                patience=2), network_config(corpus),
                       progress=log, log=(lambda m: print(m, file=sys.stderr)) if log else None)
        train_seconds = time.perf_counter() - t0
        ck = load_checkpoint(tmp)
    calib = calibration(ck, n=min(5000, max(200, simulations)))  # small for smoke runs
    batch = held_out(ck, series)
    names = corpus.param_names[0]
    ib, ig = names.index("beta"), names.index("gamma")
    truth_theta = corpus.natural(0, batch.theta.double().numpy())
    r0_true = truth_theta["beta"] / truth_theta["gamma"]
    with torch.no_grad():
        out = ck.network(batch.context, batch.mask)
    mid = len(ck.network.config.quantiles) // 2
    med = out["params"][:, :, mid].double().numpy()
    est = corpus.natural(0, med)
    r0_sgnn = est["beta"] / est["gamma"]
    data = np.where(batch.mask.numpy() > 0, batch.context.numpy(), np.nan)
    times = cfg.dt * (cfg.max_delay + np.arange(cfg.n_context))
    t0 = time.perf_counter()
    fit = batched_mle(seir(), times, data, starts=mle_starts, steps=mle_steps,
                      solver_dt=cfg.solver_dt, observables=corpus.observables)
    mle_seconds = time.perf_counter() - t0
    r0_mle = fit.params[:, ib] / fit.params[:, ig]
    mse_sgnn = float(np.mean((r0_sgnn - r0_true) ** 2))
    mse_mle = float(np.mean((r0_mle - r0_true) ** 2))
    return {
        "benchmark": "sgnn_r0",
        "held_out_series": series,
        "r0_mse_sgnn": mse_sgnn,
        "r0_mse_mle": mse_mle,
        "ratio_sgnn_over_mle": mse_sgnn / mse_mle if mse_mle else None,
        "goal_ratio_at_most": 0.5,
        "goal_met": bool(mse_mle and mse_sgnn / mse_mle <= 0.5),
        "r0_median_abs_error_sgnn": float(np.median(np.abs(r0_sgnn - r0_true))),
        "r0_median_abs_error_mle": float(np.median(np.abs(r0_mle - r0_true))),
        "param_coverage_50": calib["param_coverage_50"],
        "param_coverage_90": calib["param_coverage_90"],
        "forecast_coverage_90": calib["forecast_coverage_90"],
        "training": {"simulations_seen": result.simulations_seen, "seconds": train_seconds,
                     "epochs_run": result.epochs_run},
        "mle": {"steps": mle_steps, "starts": mle_starts, "seconds": mle_seconds},
        "threads": 1,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--simulations", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--series", type=int, default=300)
    parser.add_argument("--mle-steps", type=int, default=200)
    parser.add_argument("--mle-starts", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = run(args.simulations, args.epochs, args.series, args.mle_steps, args.mle_starts,
                 args.seed, log=not args.json)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
