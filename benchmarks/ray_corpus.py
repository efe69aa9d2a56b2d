"""SGNN corpus generation throughput: in-process against Ray with one and two workers.

The corpus is the model-selection mixture (SIR, SEIR, SIRS; ``sgnn.examples``) with the
default :class:`~sgnn.corpus.CorpusConfig` (42-day contexts, 14-day horizon, every
observation artifact on), drawn in blocks of ``--block`` windows, the way training asks
for them (``batch_at(i, size)``). Three producers stream the same blocks:

* ``local``: ``Corpus.batch_at`` in this process, one torch thread (what training does
  without ``--executor ray``);
* ``ray_1`` and ``ray_2``: :class:`sgnn.sharded.ShardedSource` with one and two Ray
  actors on a local Ray cluster (``num_cpus`` = this machine's cores), blocks consumed in
  index order as training would, prefetch two per worker.

Each figure is windows per second, a median over ``--repeats`` passes over fresh block
indices (a pass is ``--blocks`` blocks); warm-up (model compilation, actor start) is
excluded and reported apart (``startup_s``). ``ratio`` is a producer's median rate over
the local median. ``samples_per_cpu_s`` divides the windows by the CPU seconds the
producing processes used (the trainer's own process for ``local``, the actors' for Ray):
on a loaded machine wall-clock rates mostly measure each producer's share of the CPUs,
the CPU rate shows whether a Ray worker simulates as efficiently as the trainer would.
``identical`` checks that the streamed blocks equal the local ones. The load average is
reported with the figures: on a shared machine it explains them.

    python benchmarks/ray_corpus.py --json [--blocks 6] [--block 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sgnn.corpus import Corpus, CorpusConfig  # noqa: E402
from sgnn.examples import epidemic_structures  # noqa: E402
from sgnn.sharded import ShardedConfig, ShardedSource, connect  # noqa: E402


def make_corpus(seed: int = 0) -> Corpus:
    return Corpus(list(epidemic_structures()), CorpusConfig(seed=seed))


def _same(a, b) -> bool:
    return all(torch.equal(torch.nan_to_num(getattr(a, k)), torch.nan_to_num(getattr(b, k)))
               for k in ("context", "mask", "target", "target_mask", "structure", "theta"))


def time_local(corpus: Corpus, plans: list[list[tuple[int, int]]]) -> tuple[list[float], float]:
    """Rates per pass, and windows per CPU second over all passes."""
    rates, total = [], 0
    cpu = time.process_time()
    for plan in plans:
        began = time.perf_counter()
        n = sum(len(corpus.batch_at(i, size)) for i, size in plan)
        rates.append(n / (time.perf_counter() - began))
        total += n
    return rates, total / (time.process_time() - cpu)


def time_ray(corpus: Corpus, plans: list[list[tuple[int, int]]], workers: int,
             block: int) -> tuple[list[float], float, float, bool]:
    """Rates per pass, windows per CPU second (all actors, all passes), actor start-up
    seconds, and whether the blocks equal local ones."""
    warm = [(10_000_000 + w, block) for w in range(workers)]  # one block per actor, uncounted
    began = time.perf_counter()
    rates = []
    with ShardedSource(corpus, warm, ShardedConfig(workers=workers)) as source:
        for index, size in warm:
            source.batch_at(index, size)
        startup = time.perf_counter() - began
        cpu = sum(source.worker_cpu_seconds())
        total = 0
        first = None
        for plan in plans:  # a pass starts idle: nothing of it was simulated ahead
            began = time.perf_counter()
            source.extend(plan)
            n = 0
            for index, size in plan:
                got = source.batch_at(index, size)
                first = first if first is not None else got
                n += len(got)
            rates.append(n / (time.perf_counter() - began))
            total += n
        per_cpu = total / (sum(source.worker_cpu_seconds()) - cpu)
    identical = _same(first, corpus.batch_at(*plans[0][0]))
    return rates, per_cpu, startup, identical


def summary(rates: list[float], local: float | None = None) -> dict:
    median = statistics.median(rates)
    out = {"samples_per_s": round(median, 1), "runs": [round(r, 1) for r in rates]}
    if local:
        out["ratio"] = round(median / local, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6, help="blocks per pass")
    parser.add_argument("--block", type=int, default=2048, help="windows per block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = [round(x, 2) for x in os.getloadavg()]
    corpus = make_corpus()
    began = time.perf_counter()
    corpus.batch_at(20_000_000, args.block)  # compile the simulators, uncounted
    local_startup = time.perf_counter() - began
    plans = [[(r * args.blocks + j, args.block) for j in range(args.blocks)]
             for r in range(args.repeats)]
    local_rates, local_cpu = time_local(corpus, plans)
    local = statistics.median(local_rates)
    cpus = os.cpu_count() or 1
    connect(None, num_cpus=cpus)
    results = {"local": {**summary(local_rates), "samples_per_cpu_s": round(local_cpu, 1),
                         "startup_s": round(local_startup, 2)}}
    for workers in (1, 2):
        rates, per_cpu, startup, identical = time_ray(corpus, plans, workers, args.block)
        results[f"ray_{workers}"] = {**summary(rates, local),
                                     "samples_per_cpu_s": round(per_cpu, 1),
                                     "startup_s": round(startup, 2), "identical": identical}
    import ray

    report = {"benchmark": "ray_corpus", "structures": corpus.names,
              "block": args.block, "blocks_per_pass": args.blocks, "repeats": args.repeats,
              "samples_per_pass": args.block * args.blocks, **results,
              "cpus": cpus, "load_average_before": load_before,
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "versions": {"python": platform.python_version(), "torch": torch.__version__,
                           "ray": ray.__version__}}
    ray.shutdown()
    if args.json:
        print(json.dumps(report))
        return
    print(f"corpus generation, {args.block} windows per block, {args.blocks} blocks per pass, "
          f"median of {args.repeats}:")
    for name in ("local", "ray_1", "ray_2"):
        row = report[name]
        ratio = f"  x{row['ratio']:.2f} vs local" if "ratio" in row else ""
        print(f"  {name:6s} {row['samples_per_s']:>10.0f} windows/s{ratio}  "
              f"({row['samples_per_cpu_s']:.0f} windows per CPU second)")
    print(f"load average before {report['load_average_before']}, "
          f"after {report['load_average_after']}")


if __name__ == "__main__":
    main()
