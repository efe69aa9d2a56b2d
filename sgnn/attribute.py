"""Back-to-simulation attribution: which training simulations does a series resemble?

The encoder's embedding places series that the network treats alike close together. An
index of embeddings of corpus simulations (with each one's structure and parameters) lets
us answer, for an observed series, "these simulations look like your data": the share of
each structure among the nearest ones says which mechanisms the network thinks explain
the data, and their parameter spreads say which values. The index is a plain ``.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mechanistic.data import ObservedData
from sgnn.predict import prepare
from sgnn.train import Checkpoint

__all__ = ["Attribution", "EmbeddingIndex"]


@dataclass
class Attribution:
    """The nearest simulations and what they carry."""

    neighbours: list[dict[str, Any]]
    structure_share: dict[str, float]
    params: dict[str, dict[str, dict[str, float]]]  # structure -> param -> median/q05/q95

    def to_dict(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "structure_share": self.structure_share,
                "params": self.params}


class EmbeddingIndex:
    """Unit-normalised embeddings of corpus simulations, for cosine nearest neighbours."""

    def __init__(self, embeddings: np.ndarray, structure: np.ndarray, theta: np.ndarray) -> None:
        norm = np.linalg.norm(embeddings, axis=1, keepdims=True)
        self.embeddings = (embeddings / np.maximum(norm, 1e-12)).astype(np.float32)
        self.structure = structure.astype(np.int64)
        self.theta = theta.astype(np.float64)

    def __len__(self) -> int:
        return int(self.structure.shape[0])

    @classmethod
    def build(cls, checkpoint: Checkpoint, n: int = 5000, seed: int = 7,
              chunk: int = 1024) -> EmbeddingIndex:
        """Embed ``n`` fresh simulations drawn with their own seed."""
        rng = np.random.default_rng(seed)
        embs, structs, thetas = [], [], []
        net = checkpoint.network
        net.eval()
        for lo in range(0, n, chunk):
            batch = checkpoint.corpus.batch(min(chunk, n - lo), rng=rng)
            with torch.no_grad():
                emb, _ = net.encode(batch.context, batch.mask)
            embs.append(emb.numpy())
            structs.append(batch.structure.numpy())
            thetas.append(batch.theta.double().numpy())
        return cls(np.concatenate(embs), np.concatenate(structs), np.concatenate(thetas))

    def save(self, path: str | Path) -> None:
        np.savez(path, embeddings=self.embeddings, structure=self.structure, theta=self.theta)

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingIndex:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["embeddings"], data["structure"], data["theta"])

    def query(self, embedding: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of the ``k`` nearest, best first."""
        e = embedding / max(float(np.linalg.norm(embedding)), 1e-12)
        sims = self.embeddings @ e.astype(np.float32)
        k = min(k, len(self))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return top, sims[top]

    def attribute(self, checkpoint: Checkpoint, data: ObservedData, k: int = 20) -> Attribution:
        """Nearest simulations to ``data`` and a summary of their structures and parameters."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        context, mask, _, _ = prepare(checkpoint, data)
        with torch.no_grad():
            emb, _ = checkpoint.network.encode(context, mask)
        top, sims = self.query(emb[0].numpy(), k)
        corpus = checkpoint.corpus
        neighbours = []
        for i, s in zip(top, sims, strict=True):
            kk = int(self.structure[i])
            u = self.theta[i, corpus.offsets[kk]:corpus.offsets[kk + 1]][None, :]
            values = {n: float(v[0]) for n, v in corpus.natural(kk, u).items()}
            neighbours.append({"index": int(i), "similarity": float(s),
                               "structure": corpus.names[kk], "params": values})
        share = {name: sum(nb["structure"] == name for nb in neighbours) / len(neighbours)
                 for name in corpus.names}
        params: dict[str, dict[str, dict[str, float]]] = {}
        for name in corpus.names:
            rows = [nb["params"] for nb in neighbours if nb["structure"] == name]
            if rows:
                params[name] = {p: _summary([r[p] for r in rows]) for p in rows[0]}
        return Attribution(neighbours, share, params)


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"median": float(np.median(a)), "q05": float(np.quantile(a, 0.05)),
            "q95": float(np.quantile(a, 0.95)), "n": int(a.size)}
