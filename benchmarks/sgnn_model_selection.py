"""Model selection from short noisy reported-case series: SGNN against AIC over ML fits.

Three epidemic structures (SIR, SEIR, SIRS; ``sgnn/examples.py``) share one observable,
reported daily cases under negative binomial noise with a drifting reporting fraction, a
reporting delay, weekday effects and missing days. An SGNN is trained only on simulations
of the three; on held-out simulated series (a seed of their own) it names a structure,
and so does AIC over maximum-likelihood fits of each structure to the same series
(batched multi-start Adam under the declared noise, ``sgnn/diagnostics.py``). Reported:
misclassification of both (goal: SGNN <= 0.5 x AIC), interval coverage on held-out
simulations, corpus and training throughput, and the time to predict one series.

    python benchmarks/sgnn_model_selection.py --json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mechanistic.data import ObservedData  # noqa: E402
from sgnn.corpus import Corpus, CorpusConfig  # noqa: E402
from sgnn.diagnostics import calibration, compare_with_mle  # noqa: E402
from sgnn.examples import epidemic_structures  # noqa: E402
from sgnn.predict import predict  # noqa: E402
from sgnn.train import TrainConfig, load_checkpoint, network_config, train  # noqa: E402


def corpus_config(seed: int) -> CorpusConfig:
    """Five weeks of context at most (three at least), two weeks ahead."""
    return CorpusConfig(n_context=35, min_context=21, horizon=14, max_offset=0, max_delay=2,
                        drift_sd=0.03, weekday_sd=0.1, missing_rate=0.05, seed=seed)


def run(simulations: int, epochs: int, series: int, mle_steps: int, mle_starts: int,
        seed: int, log: bool) -> dict:
    torch.set_num_threads(1)
    corpus = Corpus(epidemic_structures(), corpus_config(seed))
    started = time.perf_counter()
    corpus.batch(8192, rng=np.random.default_rng(1))
    corpus_rate = 8192 / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(corpus, tmp, TrainConfig(simulations=simulations, epochs=epochs,
                                                batch_size=256, held_out=2000, seed=seed,
                                                patience=2),
                       network_config(corpus), progress=log,
                       log=(lambda m: print(m, file=sys.stderr)) if log else None)
        train_seconds = time.perf_counter() - t0
        checkpoint = load_checkpoint(tmp)
    calib = calibration(checkpoint, n=5000)
    t0 = time.perf_counter()
    compare = compare_with_mle(checkpoint, n=series, steps=mle_steps, starts=mle_starts)
    mle_seconds = time.perf_counter() - t0
    one = checkpoint.corpus.batch(1, rng=np.random.default_rng(5))
    y = np.where(one.mask[0, :, 0].numpy() > 0, one.context[0, :, 0].numpy(), np.nan)
    keep = ~np.isnan(y)
    data = ObservedData(np.arange(35.0)[keep], {"cases": y[keep]})
    predict(checkpoint, data)
    t0 = time.perf_counter()
    for _ in range(50):
        predict(checkpoint, data)
    predict_ms = (time.perf_counter() - t0) / 50 * 1000
    ratio = compare["sgnn_error"] / compare["aic_error"] if compare["aic_error"] else None
    return {
        "benchmark": "sgnn_model_selection",
        "structures": compare["structures"],
        "held_out_series": series,
        "sgnn_misclassification": compare["sgnn_error"],
        "aic_misclassification": compare["aic_error"],
        "ratio_sgnn_over_aic": ratio,
        "goal_ratio_at_most": 0.5,
        "goal_met": ratio is not None and ratio <= 0.5,
        "sgnn_confusion": compare["sgnn_confusion"],
        "aic_confusion": compare["aic_confusion"],
        "sgnn_structure_accuracy_5000_held_out": calib["structure_accuracy"],
        "forecast_coverage_50": calib["forecast_coverage_50"],
        "forecast_coverage_90": calib["forecast_coverage_90"],
        "param_coverage_50": calib["param_coverage_50"],
        "param_coverage_90": calib["param_coverage_90"],
        "training": {"simulations_per_epoch": simulations, "epochs_run": result.epochs_run,
                     "best_epoch": result.best_epoch, "simulations_seen":
                     result.simulations_seen, "seconds": train_seconds,
                     "samples_per_second": result.simulations_seen / train_seconds,
                     "stopped_early": result.stopped_early},
        "corpus_samples_per_second": corpus_rate,
        "mle": {"steps": mle_steps, "starts": mle_starts, "seconds": mle_seconds},
        "predict_one_series_ms": predict_ms,
        "threads": 1,
        "machine": platform.platform(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--simulations", type=int, default=100_000,
                        help="fresh simulations per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--series", type=int, default=200, help="held-out series compared")
    parser.add_argument("--mle-steps", type=int, default=200)
    parser.add_argument("--mle-starts", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run(args.simulations, args.epochs, args.series, args.mle_steps, args.mle_starts,
                 args.seed, log=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
