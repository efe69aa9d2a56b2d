"""Synthetic training corpus for the SGNN: simulations of candidate structures, made messy.

The network never sees real data in training, so the corpus must look like what reality
hands over: the declared observation noise, under-reporting that drifts, a reporting delay,
weekday effects, missing points, and context windows of varying length. Batches are drawn
on the fly ("more simulations instead of more epochs") through the compiled batched
simulator; a seed makes every batch reproducible. A fixed corpus can be cached with
``np.savez`` (plain arrays, loaded without pickle).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from mechanistic.fit import ParameterTransform
from mechanistic.model import Model
from mechanistic.observation import ObservationModel
from mechanistic.simulate import RK4, compile_model
from sgnn.heads import DEFAULT_HEADS, Draw, Head, make_head

__all__ = ["Batch", "BatchSource", "CachedCorpus", "Corpus", "CorpusConfig", "block_rng"]


@dataclass(frozen=True)
class CorpusConfig:
    """How series are simulated and degraded; validated so a bad value fails before work.

    ``n_context`` is the longest context window; each sample's context length is drawn in
    ``[min_context, n_context]`` (shorter contexts are left-padded with mask 0), because
    real series arrive with whatever history exists. ``max_offset`` shifts where the
    window starts in the epidemic, so the network sees every phase. ``narrow`` in (0, 1]
    shrinks prior draws towards each structure's fit (in the unconstrained space), 1 = the
    prior unchanged.
    """

    n_context: int = 42
    min_context: int = 21
    horizon: int = 14
    dt: float = 1.0
    solver_dt: float = 0.5
    max_offset: int = 0
    drift_sd: float = 0.05
    max_delay: int = 3
    weekday_sd: float = 0.15
    missing_rate: float = 0.05
    narrow: float = 1.0
    compiled: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_context", "min_context", "horizon"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"CorpusConfig.{name} must be an integer >= 1, "
                                 f"got {getattr(self, name)!r}")
        if self.min_context > self.n_context:
            raise ValueError(f"CorpusConfig.min_context={self.min_context} exceeds "
                             f"n_context={self.n_context}")
        for name in ("max_offset", "max_delay"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"CorpusConfig.{name} must be an integer >= 0")
        for name in ("dt", "solver_dt"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"CorpusConfig.{name} must be > 0, got {v!r}")
        for name in ("drift_sd", "weekday_sd"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"CorpusConfig.{name} must be >= 0, got {v!r}")
        if not 0 <= self.missing_rate < 1:
            raise ValueError(f"CorpusConfig.missing_rate must be in [0, 1), "
                             f"got {self.missing_rate!r}")
        if not 0 < self.narrow <= 1:
            raise ValueError(f"CorpusConfig.narrow must be in (0, 1], got {self.narrow!r}")

    @property
    def length(self) -> int:
        """Points per series: the longest context plus the horizon."""
        return self.n_context + self.horizon

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorpusConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


ARRAYS = ("context", "mask", "structure", "theta", "context_len", "delay")
"""The arrays every batch has: the network's inputs and what each window was drawn as.
The heads' targets come after them (``Batch.targets``)."""

OPTIONAL = ("clean", "latent")
"""Arrays a batch may carry for diagnostics and tests; never shipped unless present."""


@dataclass
class Batch:
    """One batch of windows. Padding and missing cells hold 0 with mask 0.

    ``structure`` and ``theta`` say what each window was drawn from: the structure's
    index, and every structure's free parameters side by side in the unconstrained space
    (NaN outside the sample's own structure), so one parameter head serves all
    structures. ``targets`` holds the configured heads' arrays by the names the heads
    declare (:attr:`sgnn.heads.Head.arrays`; the forecast head's are ``target [B, H, O]``
    and ``target_mask``), also readable as attributes (``batch.target``). ``clean`` is
    the expected reported value (after drift, delay, weekday effect, before noise) over
    the full window; ``latent`` the simulator's observable on its whole grid.
    """

    context: torch.Tensor        # [B, C, O]
    mask: torch.Tensor           # [B, C, O]
    structure: torch.Tensor      # [B] int64
    theta: torch.Tensor          # [B, P]
    context_len: torch.Tensor    # [B] int64
    delay: torch.Tensor          # [B] int64
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    clean: torch.Tensor | None = None   # [B, C + H, O]
    latent: torch.Tensor | None = None  # [B, grid, O]

    def __len__(self) -> int:
        return int(self.context.shape[0])

    def __getattr__(self, name: str) -> torch.Tensor:
        targets = self.__dict__.get("targets")
        if targets is not None and name in targets:
            return targets[name]
        raise AttributeError(f"{type(self).__name__} has no field or target array {name!r}")

    def arrays(self) -> dict[str, torch.Tensor]:
        """Every array by name (``ARRAYS``, then the targets), without ``OPTIONAL``."""
        return {**{key: getattr(self, key) for key in ARRAYS}, **self.targets}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, torch.Tensor]) -> Batch:
        """The inverse of :meth:`arrays` (``OPTIONAL`` arrays taken where present): how a
        cached file or a Ray worker's block becomes a batch again."""
        targets = {k: v for k, v in arrays.items() if k not in ARRAYS and k not in OPTIONAL}
        return cls(**{key: arrays[key] for key in ARRAYS}, targets=targets,
                   **{key: arrays.get(key) for key in OPTIONAL})

    def slice(self, lo: int, hi: int) -> Batch:
        """Rows ``lo:hi`` (views, no copies)."""
        return Batch(**{key: getattr(self, key)[lo:hi] for key in ARRAYS},
                     targets={key: v[lo:hi] for key, v in self.targets.items()},
                     **{key: None if getattr(self, key) is None else getattr(self, key)[lo:hi]
                        for key in OPTIONAL})


def block_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of block ``index`` of a corpus seeded ``seed``.

    A generator of its own per block (not one stream consumed in order) is what lets
    blocks be drawn in any order, in any process, and still come out identical.
    """
    if index < 0:
        raise ValueError(f"block index must be >= 0, got {index}")
    return np.random.default_rng([int(seed), int(index)])


@runtime_checkable
class BatchSource(Protocol):
    """Where training gets its windows: block ``index`` of ``size`` windows, on demand.

    The contract: ``batch_at(i, n)`` is a pure function of the source's seed, ``i`` and
    ``n`` (same arguments, same tensors, whichever process or machine computes it and
    whatever was asked before). Training asks for blocks ``0, 1, 2, ...`` (see
    :func:`sgnn.train.epoch_blocks`) and cuts each into minibatches, so another
    implementation (blocks simulated by parallel workers, prefetched, streamed) trains
    the network to exactly the same weights as :class:`Corpus` itself.
    """

    def batch_at(self, index: int, size: int) -> Batch: ...


class Corpus:
    """A weighted mixture of structures; ``batch(n)`` draws ``n`` fresh windows.

    ``heads`` names the :mod:`sgnn.heads` whose targets each batch carries (a network
    trained on the corpus may use any of them).
    """

    def __init__(self, models: Sequence[Model], config: CorpusConfig | None = None,
                 weights: Sequence[float] | None = None,
                 fits: Sequence[Mapping[str, float] | None] | None = None,
                 names: Sequence[str] | None = None,
                 heads: Sequence[str] = DEFAULT_HEADS) -> None:
        if not models:
            raise ValueError("a corpus needs at least one model")
        self.config = config or CorpusConfig()
        self.models = list(models)
        self.names = list(names) if names is not None else [m.name for m in models]
        if len(self.names) != len(self.models):
            raise ValueError("names and models differ in length")
        w = np.ones(len(models)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(models),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(models)} non-negative numbers, not all 0")
        self.weights = w / w.sum()
        first = self.models[0].observable_names
        self.observables = [o for o in first if all(o in m.observable_names for m in models)]
        if not self.observables:
            raise ValueError("the structures share no observable; a corpus needs one in common")
        self.fits = list(fits) if fits is not None else [None] * len(models)
        self.param_names = [m.free_param_names for m in self.models]
        self.offsets = np.cumsum([0] + [len(p) for p in self.param_names]).tolist()
        self.transforms = [[ParameterTransform.for_prior(n, m.params_[n].prior) for n in names_]
                           for m, names_ in zip(self.models, self.param_names, strict=True)]
        self._compiled = [None] * len(models)
        self._noise = [ObservationModel(m) for m in models]
        self._rng = np.random.default_rng(self.config.seed)
        self.head_names = tuple(heads)
        self.heads = _target_heads(self.head_names)

    @property
    def n_params(self) -> int:
        return int(self.offsets[-1])

    def reseed(self, seed: int) -> None:
        """Restart the random stream (held-out sets use a seed of their own)."""
        self._rng = np.random.default_rng(seed)

    def draw_params(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of structure ``k``'s free parameters, unconstrained, ``[n, P_k]``."""
        model, fit = self.models[k], self.fits[k]
        cols = []
        for name, tr in zip(self.param_names[k], self.transforms[k], strict=True):
            u = tr.inverse(model.params_[name].prior.sample(rng, n))
            if fit is not None and name in fit and self.config.narrow < 1:
                centre = float(tr.inverse(np.array([fit[name]]))[0])
                u = centre + self.config.narrow * (u - centre)
            cols.append(u)
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    def natural(self, k: int, u: np.ndarray) -> dict[str, np.ndarray]:
        """Unconstrained draws ``[n, P_k]`` of structure ``k`` mapped back to parameters."""
        return {name: tr.forward(torch.as_tensor(u[:, i], dtype=torch.float64)).numpy()
                for i, (name, tr) in enumerate(zip(self.param_names[k], self.transforms[k],
                                                   strict=True))}

    def _simulate(self, k: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        cfg = self.config
        if self._compiled[k] is None:
            self._compiled[k] = compile_model(self.models[k], dtype=torch.float32)
        params = self.natural(k, u)
        grid = cfg.dt * np.arange(cfg.length + cfg.max_delay + cfg.max_offset)
        table = {n: torch.as_tensor(v, dtype=torch.float32) for n, v in params.items()}
        solver = RK4(cfg.solver_dt, compiled=cfg.compiled)
        with torch.no_grad():
            parts = list(self._compiled[k].iter_simulate(table, grid, solver=solver, t0=0.0))
        obs = torch.cat([p.observables for p in parts]).double().numpy()
        ok = torch.cat([p.status for p in parts]).numpy() == 0
        ok &= np.isfinite(obs).all(axis=(1, 2))
        return obs, ok, params

    def batch(self, n: int, rng: np.random.Generator | None = None,
              keep_latent: bool = False) -> Batch:
        """``n`` fresh windows from the mixture (failed simulations are redrawn)."""
        rng = rng or self._rng
        counts = rng.multinomial(n, self.weights)
        pieces: list[dict[str, np.ndarray]] = []
        for k, count in enumerate(counts):
            need = int(count)
            for _ in range(20):
                if need == 0:
                    break
                piece = self._structure_piece(k, need, rng)
                pieces.append(piece)
                need -= len(piece["structure"])
            if need:
                raise RuntimeError(f"structure {self.names[k]!r}: simulations keep failing")
        joined = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
        order = rng.permutation(n)
        joined = {key: v[order] for key, v in joined.items()}
        out = {key: _as_batch_tensor(v) for key, v in joined.items() if key not in OPTIONAL}
        return Batch.from_arrays({**out, "clean": torch.as_tensor(joined["clean"]).float(),
                                  "latent": torch.as_tensor(joined["latent"]).float()
                                  if keep_latent else None})

    def _structure_piece(self, k: int, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        cfg = self.config
        u = self.draw_params(k, n, rng)
        obs, ok, params = self._simulate(k, u)
        u, obs = u[ok], obs[ok]
        params = {name: v[ok] for name, v in params.items()}
        m = len(u)
        cols = [self.models[k].observable_names.index(o) for o in self.observables]
        length = cfg.length
        delay = rng.integers(0, cfg.max_delay + 1, m)
        offset = rng.integers(0, cfg.max_offset + 1, m)
        start = offset + cfg.max_delay - delay   # reported(t) = true(t - delay)
        idx = start[:, None] + np.arange(length)[None, :]
        expected = np.take_along_axis(obs, idx[:, :, None], axis=1)  # all observables
        factor = np.ones((m, length))
        if cfg.drift_sd > 0:  # multiplicative under-reporting that drifts (log random walk)
            walk = np.cumsum(rng.normal(0, cfg.drift_sd, (m, length)), axis=1)
            factor *= np.exp(walk - walk.mean(axis=1, keepdims=True))
        if cfg.weekday_sd > 0 and cfg.dt == 1.0:  # weekday effect for daily data
            effect = rng.normal(0, cfg.weekday_sd, (m, 7))
            effect -= effect.mean(axis=1, keepdims=True)
            phase = rng.integers(0, 7, m)
            day = (phase[:, None] + np.arange(length)[None, :]) % 7
            factor *= np.exp(np.take_along_axis(effect, day, axis=1))
        expected = expected * factor[:, :, None]
        noisy = self._noise[k].sample(expected, params, rng)[:, :, cols] if m else \
            np.zeros((0, length, len(cols)))
        expected = expected[:, :, cols]
        observed = rng.random(noisy.shape) >= cfg.missing_rate
        observed &= np.isfinite(noisy)
        values = np.where(observed, noisy, 0.0)
        ctx_len = rng.integers(cfg.min_context, cfg.n_context + 1, m)
        # Right-align each context at the forecast origin n_context; pad on the left.
        pos = np.arange(cfg.n_context)[None, :]
        keep = pos >= (cfg.n_context - ctx_len)[:, None]
        ctx_mask = observed[:, :cfg.n_context] & keep[:, :, None]
        theta = np.full((m, self.n_params), np.nan)
        theta[:, self.offsets[k]:self.offsets[k + 1]] = u
        draw = Draw(structure=k, theta=theta, params=params, values=values, observed=observed,
                    clean=expected, latent=obs[:, :, cols], n_context=cfg.n_context,
                    context_len=ctx_len.astype(np.int64), delay=delay.astype(np.int64))
        piece = {
            "context": np.where(ctx_mask, values[:, :cfg.n_context], 0.0),
            "mask": ctx_mask.astype(np.float32),
            "structure": np.full(m, k, dtype=np.int64),
            "theta": theta,
            "context_len": draw.context_len,
            "delay": draw.delay,
            "clean": expected,
            "latent": draw.latent,
        }
        for head in self.heads:  # after every random number: heads draw none
            piece.update(_head_targets(head, draw, m))
        return piece

    def batch_at(self, index: int, size: int) -> Batch:
        """Block ``index`` of ``size`` windows: a pure function of (seed, index, size)."""
        return self.batch(size, rng=block_rng(self.config.seed, index))

    def iterate(self, batch_size: int, n_batches: int) -> Iterator[Batch]:
        for _ in range(n_batches):
            yield self.batch(batch_size)

    def save(self, path: str | Path, n: int, batch_size: int = 4096) -> Path:
        """Draw ``n`` windows and cache them as a plain ``.npz`` (no pickle)."""
        parts = [self.batch(min(batch_size, n - lo)).arrays()
                 for lo in range(0, n, batch_size)]
        arrays = {key: torch.cat([p[key] for p in parts]).numpy() for key in parts[0]}
        path = Path(path)
        np.savez(path, **arrays)
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


class CachedCorpus:
    """A fixed corpus read back from :meth:`Corpus.save`; batches by seeded shuffles."""

    def __init__(self, path: str | Path, seed: int = 0) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.arrays = {key: torch.as_tensor(data[key]) for key in data.files}
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(self.arrays["structure"].shape[0])

    def batch(self, n: int, rng: np.random.Generator | None = None) -> Batch:
        pick = torch.as_tensor((rng or self._rng).choice(len(self), n, replace=n > len(self)))
        return Batch.from_arrays({key: v[pick] for key, v in self.arrays.items()})

    def batch_at(self, index: int, size: int) -> Batch:
        """Block ``index``: ``size`` cached windows picked by a shuffle seeded (seed, index)."""
        return self.batch(size, rng=block_rng(self.seed, index))


def _target_heads(names: Sequence[str]) -> list[Head]:
    """The heads a corpus cuts targets for; their arrays may not clash with each other's
    or with a batch's own."""
    heads = [make_head(name) for name in names]
    taken = set(ARRAYS) | set(OPTIONAL) | {"targets"}
    for head in heads:
        for key in head.arrays:
            if key in taken:
                raise ValueError(f"SGNN head {head.name!r}: target array {key!r} is taken "
                                 f"by the batch or another head; rename it")
            taken.add(key)
    return heads


def _head_targets(head: Head, draw: Draw, m: int) -> dict[str, np.ndarray]:
    """A head's targets for a draw of ``m`` windows, checked against what it declares."""
    got = head.targets(draw)
    if set(got) != set(head.arrays):
        raise ValueError(f"SGNN head {head.name!r}: targets() gave {sorted(got)}, its "
                         f"arrays are {list(head.arrays)}")
    out = {key: np.asarray(got[key]) for key in head.arrays}
    for key, value in out.items():
        if value.ndim == 0 or value.shape[0] != m:
            raise ValueError(f"SGNN head {head.name!r}: target {key!r} has shape "
                             f"{value.shape}, not {m} rows")
    return out


def _as_batch_tensor(values: np.ndarray) -> torch.Tensor:
    """Floating arrays become float32 (what the network computes in), others stay."""
    tensor = torch.as_tensor(values)
    return tensor.float() if tensor.is_floating_point() else tensor
