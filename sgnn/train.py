"""Train an SGNN on fresh simulations; checkpoint, early-stop on held-out simulations, resume.

Every epoch draws new windows from the corpus, so the network rarely sees a simulation
twice: more simulations instead of more epochs. Windows come in *blocks* (``block``
windows simulated at once, then cut into minibatches): block ``i`` of the run is
``source.batch_at(i, size)``, a pure function of the corpus seed and ``i``
(:class:`sgnn.corpus.BatchSource`), and :func:`epoch_blocks` says which blocks an epoch
uses. So a resumed run continues the same stream, and blocks simulated elsewhere (other
processes, other machines) train exactly the same network as blocks simulated here. A
fixed held-out set, drawn with a seed of its own, decides early stopping. A checkpoint folder holds:

* ``weights.safetensors`` - the best state dict (tensors and a bounded header: loading
  executes and unpickles nothing);
* ``last.safetensors`` and ``last.json`` - the latest weights and optimiser tensors, and
  the optimiser's settings, scheduler and counters as JSON, for resuming;
* ``config.json`` - network, corpus and training settings, structure and parameter names;
* ``models/<i>.json`` - the simulators' model JSON, so predictions can simulate again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as save_tensors

from mechanistic.errors import UntrustedDataError
from mechanistic.files import write_atomic, write_bytes_atomic
from mechanistic.serialize import model_from_json, model_to_json
from mechanistic.untrusted import read_inside, read_json_inside
from sgnn.corpus import Batch, BatchSource, Corpus, CorpusConfig
from sgnn.network import SGNN, SGNNConfig

__all__ = ["Checkpoint", "TrainConfig", "TrainResult", "epoch_blocks", "load_checkpoint",
           "network_config", "train"]

HELD_OUT_SEED = 987_654_321


@dataclass(frozen=True)
class TrainConfig:
    """Budget and optimiser settings; ``simulations`` fresh windows per epoch."""

    simulations: int = 20_000
    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    held_out: int = 1000
    patience: int = 3
    seed: int = 0
    threads: int | None = 1  # one thread: on a shared 2-core box, two spin-wait each other
    block: int = 2048  # windows simulated at once, then cut into batches (less overhead)

    def __post_init__(self) -> None:
        for name in ("simulations", "epochs", "batch_size", "held_out", "patience", "block"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 1, "
                                 f"got {getattr(self, name)!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError("TrainConfig.weight_decay must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def block_sizes(self) -> list[int]:
        """Windows per block within one epoch (the last block may be short)."""
        block = max(self.block, self.batch_size)
        return [min(block, self.simulations - lo) for lo in range(0, self.simulations, block)]


def epoch_blocks(config: TrainConfig, epoch: int) -> list[tuple[int, int]]:
    """``(block index, size)`` pairs epoch ``epoch`` (from 0) trains on, in order.

    Block indices run on across epochs (epoch 1 starts where epoch 0 stopped), so every
    block of a run is distinct. A producer that knows this plan can simulate blocks ahead
    of time or in parallel; the trainer asks the source for exactly these.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    sizes = config.block_sizes()
    first = epoch * len(sizes)
    return [(first + j, size) for j, size in enumerate(sizes)]


@dataclass
class TrainResult:
    """What a training run did (JSON-ready through ``to_dict``)."""

    epochs_run: int
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    simulations_seen: int = 0
    wall_time: float = 0.0
    samples_per_second: float = 0.0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Checkpoint:
    """A trained network with what it was trained on."""

    network: SGNN
    corpus: Corpus
    meta: dict[str, Any]


def network_config(corpus: Corpus, **overrides: Any) -> SGNNConfig:
    """An :class:`SGNNConfig` shaped for ``corpus``, with the corpus's heads unless
    ``heads`` is overridden (with heads the corpus draws targets for)."""
    cfg = corpus.config
    overrides.setdefault("heads", corpus.head_names)
    return SGNNConfig(n_context=cfg.n_context, horizon=cfg.horizon,
                      n_observables=len(corpus.observables), n_structures=len(corpus.models),
                      n_params=corpus.n_params, **overrides)


def evaluate(net: SGNN, batch: Batch, chunk: int = 1024) -> dict[str, float]:
    """Mean losses, then the heads' metrics (structure accuracy), without gradients."""
    net.eval()
    sums: dict[str, float] = {}
    metrics: dict[str, float] = {}
    with torch.no_grad():
        for lo in range(0, len(batch), chunk):
            part = batch.slice(lo, lo + chunk)
            out = net(part.context, part.mask)
            n = len(part)
            for k, v in net.loss(out, part).items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            for head in net.heads:
                for k, v in head.metrics(out[head.key], part).items():
                    metrics[k] = metrics.get(k, 0) + v
    result = {k: v / len(batch) for k, v in sums.items()}
    result.update({k: v / len(batch) for k, v in metrics.items()})
    return result


def _write_meta(folder: Path, corpus: Corpus, net_config: SGNNConfig,
                train_config: TrainConfig) -> None:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    for i, model in enumerate(corpus.models):
        (folder / "models" / f"{i}.json").write_text(model_to_json(model))
    meta = {"sgnn": net_config.to_dict(), "corpus": corpus.config.to_dict(),
            "train": train_config.to_dict(), "names": corpus.names,
            "weights": corpus.weights.tolist(), "observables": corpus.observables,
            "param_names": corpus.param_names, "fits": corpus.fits}
    (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")


def train(corpus: Corpus, folder: str | Path, config: TrainConfig | None = None,
          net_config: SGNNConfig | None = None, *, resume: bool = False,
          progress: bool = False, log: Callable[[str], None] | None = None,
          source: BatchSource | None = None) -> TrainResult:
    """Train on ``corpus``, writing the checkpoint folder; ``resume`` continues ``last.pt``.

    ``corpus`` defines the task (structures, shapes, the held-out set, what the checkpoint
    records); ``source`` supplies the training blocks and defaults to the corpus itself.
    A different source must honour :class:`~sgnn.corpus.BatchSource`'s contract (block
    ``i`` equal to ``corpus.batch_at(i, size)``) for the run to be reproducible.
    """
    config = config or TrainConfig()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(corpus, source or corpus, folder, config, net_config, resume, progress,
                      log)
    finally:
        torch.set_num_threads(threads)


def _batches(source: BatchSource, config: TrainConfig, epoch: int) -> Iterator[Batch]:
    """One epoch of fresh windows: the epoch's blocks from the source, cut into batches."""
    for index, size in epoch_blocks(config, epoch):
        block = source.batch_at(index, size)
        if len(block) != size:
            raise RuntimeError(f"batch source gave {len(block)} windows for block {index}, "
                               f"not {size}")
        for lo in range(0, size, config.batch_size):
            yield block.slice(lo, lo + config.batch_size)


def _train(corpus: Corpus, source: BatchSource, folder: Path, config: TrainConfig,
           net_config: SGNNConfig | None, resume: bool, progress: bool,
           log: Callable[[str], None] | None) -> TrainResult:
    net_config = net_config or network_config(corpus)
    missing = [name for name in net_config.heads if name not in corpus.head_names]
    if missing:
        raise ValueError(f"the network's head(s) {missing} learn from targets the corpus "
                         f"does not draw (its heads: {list(corpus.head_names)}); build the "
                         f"Corpus with heads=...")
    torch.manual_seed(config.seed)
    net = SGNN(net_config)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = sum(math.ceil(b / config.batch_size) for b in config.block_sizes())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps_per_epoch
                                                * config.epochs, pct_start=0.1)
    result = TrainResult(0, 0, math.inf)
    start_epoch = 0
    if resume and (folder / LAST_TENSORS).is_file():
        state = _read_last(folder)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        sched.total_steps = steps_per_epoch * config.epochs  # a resume may add epochs
        start_epoch = int(state["epoch"])
        result = TrainResult(**state["result"])
    else:
        _write_meta(folder, corpus, net_config, config)
    held = corpus.batch(config.held_out, rng=np.random.default_rng(HELD_OUT_SEED + config.seed))
    began = time.perf_counter()
    bad = start_epoch - result.best_epoch if start_epoch else 0
    bar = _progress(progress)
    with bar:
        task = bar.add_task("training", total=steps_per_epoch * config.epochs,
                            completed=steps_per_epoch * start_epoch)
        for epoch in range(start_epoch, config.epochs):
            net.train()
            seen, total = 0, 0.0
            for batch in _batches(source, config, epoch):
                n = len(batch)
                out = net(batch.context, batch.mask)
                loss = net.loss(out, batch)["total"]
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                sched.step()
                seen += n
                total += loss.item() * n
                bar.update(task, advance=1, description=f"epoch {epoch + 1} loss {loss.item():.3f}")
            val = evaluate(net, held)
            result.history.append({"epoch": epoch + 1, "train_loss": total / seen,
                                   **{f"val_{k}": v for k, v in val.items()}})
            result.epochs_run = epoch + 1
            result.simulations_seen += seen
            if log:
                log(f"epoch {epoch + 1}: train {total / seen:.4f} held-out {val['total']:.4f}"
                    + (f" structure accuracy {val['accuracy']:.3f}" if "accuracy" in val
                       else ""))
            if val["total"] < result.best_val_loss:
                result.best_val_loss, result.best_epoch, bad = val["total"], epoch + 1, 0
                write_bytes_atomic(folder / WEIGHTS, save_tensors(_plain(net.state_dict())))
            else:
                bad += 1
            elapsed = time.perf_counter() - began
            result.wall_time += elapsed
            began = time.perf_counter()
            result.samples_per_second = result.simulations_seen / max(result.wall_time, 1e-9)
            _write_last(folder, net, opt, sched, epoch + 1, result)
            if bad >= config.patience:
                result.stopped_early = True
                break
    (folder / "train.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


WEIGHTS = "weights.safetensors"
LAST_TENSORS, LAST_STATE = "last.safetensors", "last.json"
_MAX_WEIGHTS = 1024 * 1024 * 1024  # a network of tens of millions of parameters


def _plain(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _write_last(folder: Path, net: SGNN, opt: torch.optim.Optimizer, sched: Any, epoch: int,
                result: TrainResult) -> None:
    """The resume point: tensors (weights, Adam moments) in safetensors, the rest as JSON."""
    tensors = {f"model.{k}": v for k, v in _plain(net.state_dict()).items()}
    opt_state = opt.state_dict()
    slots: dict[str, dict[str, Any]] = {}
    for index, values in opt_state["state"].items():
        slots[str(index)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                slots[str(index)][key] = value
    write_bytes_atomic(folder / LAST_TENSORS, save_tensors(tensors))
    write_atomic(folder / LAST_STATE, json.dumps({
        "epoch": epoch, "result": result.to_dict(), "scheduler": sched.state_dict(),
        "param_groups": opt_state["param_groups"], "slots": slots}, default=float) + "\n")


def _read_last(folder: Path) -> dict[str, Any]:
    """The resume point written by :func:`_write_last`, read as untrusted data."""
    from safetensors.torch import load

    tensors = load(read_inside(folder, LAST_TENSORS, LAST_TENSORS, _MAX_WEIGHTS))
    state = read_json_inside(folder, LAST_STATE)
    if not isinstance(state, dict) or not all(k in state for k in ("epoch", "result",
                                                                    "scheduler", "slots")):
        raise UntrustedDataError(f"{folder}/{LAST_STATE}: not a resume point written by "
                                 "`mmw sgnn train`; delete it to train afresh")
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    slots: dict[int, dict[str, Any]] = {}
    for index, values in state["slots"].items():
        slots[int(index)] = dict(values)
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    return {"model": model, "epoch": state["epoch"], "result": state["result"],
            "scheduler": state["scheduler"],
            "optimizer": {"state": slots, "param_groups": state["param_groups"]}}


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Rebuild the network and its corpus from a checkpoint folder, read as untrusted data
    (regular files inside the folder, bounded JSON, weights as safetensors)."""
    from safetensors.torch import load

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / WEIGHTS).is_file():
        raise ValueError(f"{folder}: no trained SGNN here (needs config.json and {WEIGHTS}); "
                         f"run `mmw sgnn train` first")
    try:
        meta = read_json_inside(folder, "config.json")
        names = meta["names"]
        models = [model_from_json(read_inside(folder, f"models/{i}.json", f"models/{i}.json"))
                  for i in range(len(names))]
        net_config = SGNNConfig.from_dict(meta["sgnn"])
        corpus = Corpus(models, CorpusConfig.from_dict(meta["corpus"]),
                        weights=meta["weights"], fits=_fits(meta.get("fits")), names=names,
                        heads=tuple(net_config.heads))
        net = SGNN(net_config)
        net.load_state_dict(load(read_inside(folder, WEIGHTS, WEIGHTS, _MAX_WEIGHTS)))
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UntrustedDataError(f"{folder}: not a usable SGNN checkpoint "
                                 f"({type(exc).__name__}: {str(exc)[:300]}); retrain it with "
                                 "`mmw sgnn train`") from None
    net.eval()
    return Checkpoint(net, corpus, meta)


def _fits(fits: Any) -> list[Mapping[str, float] | None] | None:
    return None if fits is None else [dict(f) if f else None for f in fits]
