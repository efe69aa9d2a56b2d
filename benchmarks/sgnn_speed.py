"""How fast is the SGNN here? Corpus generation, training throughput, a full training run,
and the latency of predicting one series.

The task is the model-selection one (SIR, SEIR, SIRS; five weeks of daily reported cases
at most, two weeks ahead; the corpus's default observation artifacts) with the default
network. Reported, as one JSON object with ``--json``:

* ``corpus_samples_per_second``: windows simulated and degraded per second (blocks of
  ``block`` windows through ``Corpus.batch_at``, the call training makes);
* ``training``: a real training run of ``simulations`` fresh simulations (one epoch:
  generation, forward, backward, held-out evaluation, checkpoints), its wall time and
  samples/s (goal: 100,000 simulations within 10 minutes on this 2-core machine);
* ``threads``: samples/s of a shorter run with 1 and with 2 torch threads (a shared
  machine may favour one: two threads spin-wait on each other when cores are busy);
* ``predict_ms``: median (and 90th percentile) wall time of ``predict`` on one series
  (goal: under 20 ms).

The machine is shared, so the load average is printed before and after each part.

    python benchmarks/sgnn_speed.py --json [--simulations 100000]
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
from sgnn.examples import epidemic_structures  # noqa: E402
from sgnn.predict import predict  # noqa: E402
from sgnn.train import TrainConfig, load_checkpoint, network_config, train  # noqa: E402


@dataclass(frozen=True)
class Settings:
    """What is timed; echoed in the JSON so a figure carries its setup."""

    simulations: int = 100_000
    corpus_blocks: int = 4
    block: int = 2048
    compare_simulations: int = 20_000
    compare_threads: bool = True
    predict_calls: int = 200
    d_model: int = 64
    n_layers: int = 2
    held_out: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and f.name != "seed" and value < 1:
                raise ValueError(f"{f.name} must be >= 1, got {value!r}")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _corpus(seed: int) -> Corpus:
    return Corpus(epidemic_structures(), CorpusConfig(n_context=35, min_context=21,
                                                      horizon=14, seed=seed))


def _train_run(corpus: Corpus, settings: Settings, simulations: int, threads: int
               ) -> tuple[dict, Path | None, tempfile.TemporaryDirectory]:
    tmp = tempfile.TemporaryDirectory()
    load_before = _load()
    began = time.perf_counter()
    result = train(corpus, tmp.name, TrainConfig(simulations=simulations, epochs=1,
                                                 held_out=settings.held_out,
                                                 block=settings.block, seed=settings.seed,
                                                 threads=threads),
                   network_config(corpus, d_model=settings.d_model,
                                  n_layers=settings.n_layers))
    wall = time.perf_counter() - began
    return ({"simulations": result.simulations_seen, "threads": threads,
             "wall_seconds": round(wall, 2),
             "samples_per_second": round(result.simulations_seen / wall, 1),
             "load_average_before": load_before, "load_average_after": _load()},
            Path(tmp.name), tmp)


def run(settings: Settings) -> dict:
    torch.set_num_threads(1)
    corpus = _corpus(settings.seed)
    corpus.batch_at(10_000, 64)                  # compile the simulators outside the timing
    load_before = _load()
    began = time.perf_counter()
    made = sum(len(corpus.batch_at(i, settings.block)) for i in range(settings.corpus_blocks))
    corpus_rate = made / (time.perf_counter() - began)
    report: dict = {
        "benchmark": "sgnn_speed",
        "settings": asdict(settings),
        "corpus_samples_per_second": round(corpus_rate, 1),
        "corpus_load_average": [load_before, _load()],
    }
    training, folder, tmp = _train_run(corpus, settings, settings.simulations, threads=1)
    report["training"] = {**training, "goal_seconds_at_most": 600 if
                          settings.simulations == 100_000 else None,
                          "goal_met": training["wall_seconds"] <= 600
                          if settings.simulations == 100_000 else None}
    checkpoint = load_checkpoint(folder)
    tmp.cleanup()
    if settings.compare_threads:
        report["threads"] = {}
        for threads in (1, 2):
            entry, _, other = _train_run(corpus, settings, settings.compare_simulations,
                                         threads)
            other.cleanup()
            report["threads"][str(threads)] = entry
    one = corpus.batch(1, rng=np.random.default_rng(5))
    y = np.where(one.mask[0, :, 0].numpy() > 0, one.context[0, :, 0].numpy(), np.nan)
    keep = ~np.isnan(y)
    data = ObservedData(np.arange(35.0)[keep], {"cases": y[keep]})
    predict(checkpoint, data)
    times = []
    load_before = _load()
    for _ in range(settings.predict_calls):
        began = time.perf_counter()
        predict(checkpoint, data)
        times.append((time.perf_counter() - began) * 1000)
    report["predict_ms"] = {"median": round(float(np.median(times)), 3),
                            "p90": round(float(np.quantile(times, 0.9)), 3),
                            "calls": settings.predict_calls, "goal_median_below": 20,
                            "goal_met": float(np.median(times)) < 20,
                            "load_average": [load_before, _load()]}
    report.update({"cpu_count": os.cpu_count(), "machine": platform.platform(),
                   "torch": torch.__version__})
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    for f in fields(Settings):
        if isinstance(f.default, bool):
            parser.add_argument("--" + f.name.replace("_", "-"),
                                action=argparse.BooleanOptionalAction, default=f.default)
        else:
            parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default),
                                default=f.default)
    args = parser.parse_args(argv)
    report = run(Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)}))
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
