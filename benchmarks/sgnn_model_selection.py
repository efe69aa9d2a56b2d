"""Model selection from short noisy reported-case series: SGNN against AIC over ML fits.

Three epidemic structures (SIR, SEIR, SIRS; ``sgnn/examples.py``) share one observable,
reported daily cases under negative binomial noise with a drifting reporting fraction, a
reporting delay, weekday effects and missing days (the corpus defaults, for training and
held-out series alike). An SGNN is trained only on simulations
of the three; on held-out simulated series (a seed of their own) it names a structure,
and so does AIC over maximum-likelihood fits of each structure to the same series
(batched multi-start Adam under the declared noise, ``sgnn/diagnostics.py``: 48 starts
screened for 60 steps, the best 6 refined for 300; with 8 plain starts only about 40% of
series had two starts agreeing on the optimum, with the screen about 90%, reported as
``mle_starts_agree_fraction``). Reported:
misclassification of both (goal: SGNN <= 0.5 x AIC), interval coverage on held-out
simulations, corpus and training throughput, and the time to predict one series.

    python benchmarks/sgnn_model_selection.py --json [--simulations N --n-context C ...]

Measured here (2 shared cores, 200 held-out series, defaults): SGNN 0.33, AIC 0.40, ratio
0.83 - the goal (<= 0.5) is not met. With 8 unscreened starts AIC was 0.38 (ratio 0.87);
with contexts of up to 8 weeks (``--n-context 56 --min-context 28``) SGNN 0.26, AIC
0.305 (0.85; unscreened fits: AIC 0.29, 0.90). The SGNN's held-out structure accuracy
was still rising at the last epoch (0.67, 0.74 at 8 weeks); SIR and SIRS with slow
waning look alike over a few weeks, to both methods. Three times the fresh simulations
(``--simulations 300000``, 3 epochs, 900k seen; 530 s training, 11.5 min in all at load
average 6.9) moved little: SGNN 0.325, AIC 0.40, ratio 0.81; held-out structure accuracy
0.654, 0.673, 0.672 by epoch. Five times (``--simulations 500000 --epochs 2``, 1M seen;
589 s training, 12 min in all at load average 2.1): SGNN 0.295, AIC 0.40, ratio 0.74;
structure accuracy 0.662, 0.675. On 2000 held-out simulations accuracy went 0.666, 0.670,
0.673 from 1x to 5x simulations - a plateau, not a shortage of simulations (the 0.03 gain
on the 200 series is six of them). The default stays 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
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


@dataclass(frozen=True)
class Settings:
    """Everything the figure depends on; echoed in the JSON so a number carries its setup.

    Observation artifacts default to :class:`~sgnn.corpus.CorpusConfig`'s, which stand for
    ordinary surveillance data; the held-out series are drawn with them too, so the SGNN
    and the ML fits (whose declared noise knows nothing of drift, delay or weekdays) are
    judged on the same realistic series.
    """

    simulations: int = 100_000
    epochs: int = 3
    series: int = 200
    mle_steps: int = 300
    mle_starts: int = 6
    mle_screen: int = 48
    mle_screen_steps: int = 60
    n_context: int = 35
    min_context: int = 21
    horizon: int = 14
    max_delay: int = 3
    drift_sd: float = 0.05
    weekday_sd: float = 0.15
    missing_rate: float = 0.05
    d_model: int = 64
    n_layers: int = 2
    batch_size: int = 256
    held_out: int = 2000
    calibration_n: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name != "seed" and not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")

    def corpus(self) -> CorpusConfig:
        """The corpus for training and for the held-out series (no offset: both methods
        see the epidemic from its start, so the ML fits' clock is right)."""
        return CorpusConfig(n_context=self.n_context, min_context=self.min_context,
                            horizon=self.horizon, max_offset=0, max_delay=self.max_delay,
                            drift_sd=self.drift_sd, weekday_sd=self.weekday_sd,
                            missing_rate=self.missing_rate, seed=self.seed)


def run(settings: Settings, log: bool = False) -> dict:
    torch.set_num_threads(1)
    corpus = Corpus(epidemic_structures(), settings.corpus())
    sample = min(8192, max(256, settings.simulations))
    started = time.perf_counter()
    corpus.batch(sample, rng=np.random.default_rng(1))
    corpus_rate = sample / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(corpus, tmp, TrainConfig(simulations=settings.simulations,
                                                epochs=settings.epochs,
                                                batch_size=settings.batch_size,
                                                held_out=settings.held_out, seed=settings.seed,
                                                patience=2),
                       network_config(corpus, d_model=settings.d_model,
                                      n_layers=settings.n_layers), progress=log,
                       log=(lambda m: print(m, file=sys.stderr)) if log else None)
        train_seconds = time.perf_counter() - t0
        checkpoint = load_checkpoint(tmp)
    calib = calibration(checkpoint, n=settings.calibration_n)
    t0 = time.perf_counter()
    compare = compare_with_mle(checkpoint, n=settings.series, steps=settings.mle_steps,
                               starts=settings.mle_starts, screen=settings.mle_screen,
                               screen_steps=settings.mle_screen_steps)
    mle_seconds = time.perf_counter() - t0
    n = settings.n_context
    one = checkpoint.corpus.batch(1, rng=np.random.default_rng(5))
    y = np.where(one.mask[0, :, 0].numpy() > 0, one.context[0, :, 0].numpy(), np.nan)
    keep = ~np.isnan(y)
    data = ObservedData(np.arange(float(n))[keep], {"cases": y[keep]})
    predict(checkpoint, data)
    t0 = time.perf_counter()
    for _ in range(50):
        predict(checkpoint, data)
    predict_ms = (time.perf_counter() - t0) / 50 * 1000
    ratio = compare["sgnn_error"] / compare["aic_error"] if compare["aic_error"] else None
    return {
        "benchmark": "sgnn_model_selection",
        "settings": asdict(settings),
        "structures": compare["structures"],
        "held_out_series": settings.series,
        "sgnn_misclassification": compare["sgnn_error"],
        "aic_misclassification": compare["aic_error"],
        "ratio_sgnn_over_aic": ratio,
        "goal_ratio_at_most": 0.5,
        "goal_met": ratio is not None and ratio <= 0.5,
        "sgnn_confusion": compare["sgnn_confusion"],
        "aic_confusion": compare["aic_confusion"],
        "mle_starts_agree_fraction": compare["mle_starts_agree_fraction"],
        "sgnn_structure_accuracy_held_out": calib["structure_accuracy"],
        "forecast_coverage_50": calib["forecast_coverage_50"],
        "forecast_coverage_90": calib["forecast_coverage_90"],
        "param_coverage_50": calib["param_coverage_50"],
        "param_coverage_90": calib["param_coverage_90"],
        "training": {"simulations_per_epoch": settings.simulations,
                     "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                     "simulations_seen": result.simulations_seen, "seconds": train_seconds,
                     "samples_per_second": result.simulations_seen / train_seconds,
                     "stopped_early": result.stopped_early},
        "corpus_samples_per_second": corpus_rate,
        "mle": {"steps": settings.mle_steps, "starts": settings.mle_starts,
                "screen": settings.mle_screen, "seconds": mle_seconds},
        "predict_one_series_ms": predict_ms,
        "threads": 1,
        "load_average": list(os.getloadavg()),
        "machine": platform.platform(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    for f in fields(Settings):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default),
                            default=f.default)
    args = parser.parse_args(argv)
    settings = Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)})
    report = run(settings, log=not args.json)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
