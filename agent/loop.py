"""The search loop: propose, evaluate, repair, reflect, refine, best-first.

Read it top to bottom: :meth:`Search.run` is the whole algorithm. Budgets end the search
by raising :class:`BudgetExhausted` with a message (mini-swe-agent style), and the loop
returns the best nodes found so far. Every node is saved as soon as it is evaluated, so a
killed run resumes from its run folder without redoing finished nodes.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from agent.core import Candidate, Critique, EventSink, Proposer, Task
from agent.evaluate import (
    FitJob,
    Node,
    done,
    feedback_for,
    finish_candidate,
    prepare_candidate,
    run_fit_job,
    with_origin,
)
from agent.fitpool import FitPool
from agent.verdict import Verdict, judge
from mechanistic.fit import SEARCH_FIT, FitConfig
from sandbox.spec import Sandbox

__all__ = ["BudgetExhausted", "Search", "SearchConfig", "SearchResult", "reflect"]

T = TypeVar("T")


class BudgetExhausted(Exception):
    """A budget ran out; the message says which. The search ends with what it has."""


@dataclass(frozen=True)
class SearchConfig:
    """Budgets and breadth of the tree search; validated so a typo fails at once."""

    initial: int = 4                 # K diverse structures proposed first
    max_nodes: int = 14              # candidates evaluated, repairs included
    max_repairs: int = 2             # repair attempts along one failing lineage
    refinements: int = 2             # children asked for per expansion
    max_expansions_per_structure: int = 2  # diversity: no family hogs the search
    expand: bool = True              # False: no reflect/refine (zero-shot, repair-only baselines)
    distill: bool = False            # symbolic distillation as a refinement of any proposer's
                                     # candidates (agent/distill): hybrid, then closed form
    max_llm_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    seed: int = 0
    # Fit worker processes (agent/fitpool.py): 0 fits in this process, one candidate after
    # another; N >= 1 evaluates the candidates of one proposal or refinement side by side.
    # The nodes are committed in the same order either way, so the tree is the same.
    workers: int = 0
    fit: FitConfig = SEARCH_FIT      # mechanistic/fit.py: the one place defaults live

    def __post_init__(self) -> None:
        for name in ("initial", "max_nodes", "refinements", "max_expansions_per_structure"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SearchConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("expand", "distill"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SearchConfig.{name} must be True or False, got "
                                 f"{getattr(self, name)!r}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or \
                self.workers < 0:
            raise ValueError(f"SearchConfig.workers must be an integer >= 0, got "
                             f"{self.workers!r}")
        if not isinstance(self.max_repairs, int) or self.max_repairs < 0:
            raise ValueError(f"SearchConfig.max_repairs must be >= 0, got {self.max_repairs!r}")
        for name in ("max_llm_calls", "max_tokens", "max_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"SearchConfig.{name} must be positive or None, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial": self.initial, "max_nodes": self.max_nodes,
            "max_repairs": self.max_repairs, "refinements": self.refinements,
            "max_expansions_per_structure": self.max_expansions_per_structure,
            "expand": self.expand, "distill": self.distill,
            "max_llm_calls": self.max_llm_calls,
            "max_tokens": self.max_tokens,
            "max_seconds": self.max_seconds, "seed": self.seed, "fit": self.fit.to_dict(),
        }  # not ``workers``: where the fits run does not change the search's result


@dataclass
class SearchResult:
    """Every node in the tree, best first among the valid ones, and why the search ended."""

    nodes: list[Node]
    stop_reason: str
    usage: dict[str, Any]
    verdict: Verdict | None = None

    @property
    def ranked(self) -> list[Node]:
        return sorted((n for n in self.nodes if n.ok), key=lambda n: n.score)

    @property
    def best(self) -> Node | None:
        ranked = self.ranked
        return ranked[0] if ranked else None


def reflect(node: Node) -> Critique:
    """Where the fit of a good node misses: the series with the largest normalised error,
    and whether its residuals are biased. This steers the refinements."""
    fit = node.fit or {}
    residuals = fit.get("validation_residuals") or fit.get("train_residuals") or {}
    lines = []
    for name, summary in sorted(residuals.items(),
                                key=lambda kv: -(kv[1].get("nrmse") or 0.0)):
        nrmse, bias = summary.get("nrmse"), summary.get("bias")
        lines.append(f"{name}: normalised RMSE {nrmse}, bias {bias}")
    message = "; ".join(lines) or "no residual summary"
    return Critique(message=message, residuals=residuals, validation_error=node.validation_error)


class Search:
    """One search over simulator structures for one task."""

    def __init__(
        self,
        task: Task,
        proposer: Proposer,
        config: SearchConfig,
        *,
        sandbox: Sandbox | None = None,
        log: EventSink | None = None,
        on_node: Callable[[Node], None] | None = None,
        resume: list[Node] | None = None,
    ) -> None:
        self.task, self.proposer, self.config = task, proposer, config
        self.sandbox, self.log, self.on_node = sandbox, log, on_node
        self.nodes: dict[str, Node] = {n.id: n for n in resume or []}
        self.evaluated = len(self.nodes)
        self.started = time.monotonic()
        # The search's seed seeds every fit (multi-start draws, fresh networks).
        self._fit_config = replace(config.fit, seed=config.seed)
        self.distiller = None
        if config.distill:
            from agent.distill.distiller import Distiller

            self.distiller = Distiller()

    # ------------------------------------------------------------------ the loop
    def run(self) -> SearchResult:
        stop = "search space exhausted: no valid node left to refine"
        self.pool = FitPool(self.config.workers) if self.config.workers else None
        try:
            if not self.nodes:
                self._add_all([with_origin(c, "propose", None) for c in self._ask(
                    lambda: self.proposer.propose(self.task, self.config.initial))], depth=0)
            if not any(n.ok for n in self.nodes.values()):
                stop = "no proposed structure produced a valid, fitted simulator"
            elif not self.config.expand:
                stop = "expansion off: the proposed structures (and their repairs) only"
            while self.config.expand and (node := self._pick()) is not None:
                critique = reflect(node)
                self._event("reflect", node=node.id, critique=critique.message)
                children = self._ask(lambda n=node, c=critique: self.proposer.refine(
                    self.task, n.candidate, c, self.config.refinements))
                children += self._distilled(node, self.config.refinements)
                self._add_all([with_origin(c, "refine", node.id) for c in children],
                              depth=node.depth + 1)
                node.expanded = True
                self._saved(node)
        except BudgetExhausted as exc:
            stop = str(exc)
        finally:
            if self.pool is not None:
                self.pool.close()
                self.pool = None
        self._event("stop", reason=stop)
        result = SearchResult(list(self.nodes.values()), stop, self._usage())
        result.verdict = judge(self.task, result.best)
        self._event("verdict", **result.verdict.to_dict())
        return result

    def _add_all(self, candidates: list[Candidate], depth: int) -> None:
        """Add candidates in order. With fit workers, the first evaluation of each is
        started ahead (prepared and its fit queued) and committed when its turn comes, so
        the tree, the budgets and the trajectory are those of the sequential order; what
        a budget ends before its turn is discarded."""
        ahead: dict[str, _Ahead] = {}
        if self.pool is not None:
            room = self.config.max_nodes - self.evaluated
            for candidate in candidates:
                if len(ahead) >= room or self._out_of_time():
                    break
                if candidate.id not in self.nodes and candidate.id not in ahead:
                    ahead[candidate.id] = self._start(candidate, depth, repairs=0)
        try:
            for candidate in candidates:
                self._add(candidate, depth, ahead.pop(candidate.id, None))
        finally:
            for left in ahead.values():
                if left.ticket is not None and self.pool is not None:
                    self.pool.discard(left.ticket)

    def _add(self, candidate: Candidate, depth: int, ahead: _Ahead | None = None) -> None:
        """Evaluate a candidate; while it fails, ask for repairs (bounded). A fitted hybrid
        made by distillation is distilled at once: its closed-form child is the point."""
        node = self._evaluate(candidate, depth, repairs=0, ahead=ahead)
        while node is not None and not node.ok and node.repairs < self.config.max_repairs:
            if node.candidate.proposer == "distill":
                return  # a hybrid or distilled child that fails is a result, not a repair job
            fixed = self._ask(lambda n=node: self.proposer.repair(
                self.task, n.candidate, feedback_for(n)))
            if fixed is None:
                self._event("repair_gave_up", node=node.id)
                return
            node = self._evaluate(with_origin(fixed, "repair", node.id), depth,
                                  repairs=node.repairs + 1)
        if node is not None and node.ok and node.candidate.proposer == "distill" and \
                node.model is not None and node.model.neural_:
            for child in self._distilled(node, 1):
                self._add(with_origin(child, "refine", node.id), depth + 1)

    def _distilled(self, node: Node, n: int) -> list[Candidate]:
        """Distillation's children of ``node`` (none when it is off or has nothing)."""
        if self.distiller is None:
            return []
        self._check_budget(evaluating=True)
        try:
            children = self.distiller.refine(self.task, node, n)
        except Exception as exc:  # distillation is an optional refinement: note, go on
            self._event("distill_failed", node=node.id, error=f"{type(exc).__name__}: {exc}")
            return []
        for child in children:
            self._event("distill", node=node.id, child=child.id, structure=child.structure)
        return children

    # ----------------------------------------------------------------- helpers
    def _pick(self) -> Node | None:
        """Best unexpanded valid node, skipping structure families already expanded enough."""
        expansions = Counter(self._family(n) for n in self.nodes.values() if n.expanded)
        open_nodes = [n for n in self.nodes.values() if n.ok and not n.expanded
                      and expansions[self._family(n)] < self.config.max_expansions_per_structure]
        if not open_nodes:
            return None
        return min(open_nodes, key=lambda n: (n.score, n.depth, n.id))

    def _family(self, node: Node) -> str:
        seen = set()
        while node.candidate.parent and node.candidate.parent in self.nodes and \
                node.id not in seen:
            seen.add(node.id)
            node = self.nodes[node.candidate.parent]
        return node.candidate.structure

    def _evaluate(self, candidate: Candidate, depth: int, repairs: int,
                  ahead: _Ahead | None = None) -> Node | None:
        if candidate.id in self.nodes:
            self._event("duplicate", node=candidate.id)
            return None
        self._check_budget(evaluating=True)
        self._event("evaluate", node=candidate.id, structure=candidate.structure,
                    origin=candidate.origin, parent=candidate.parent)
        node = self._finish(ahead or self._start(candidate, depth, repairs))
        self.evaluated += 1
        self.nodes[node.id] = node
        self._event("evaluated", node=node.id, status=node.status,
                    validation_error=node.validation_error, score=_finite(node.score))
        self._saved(node)
        return node

    def _start(self, candidate: Candidate, depth: int, repairs: int) -> _Ahead:
        """Everything before the fit, and the fit queued on a worker when there are any;
        the events are held until the node's turn (:meth:`_finish`)."""
        fit_config = self._fit_config
        if self.config.max_seconds is not None:  # the time budget holds inside a fit too
            left = self.config.max_seconds - (time.monotonic() - self.started)
            fit_config = replace(fit_config, max_seconds=max(5.0, left))
        events: list[dict[str, Any]] = []
        started = time.perf_counter()
        node, job = prepare_candidate(self.task, candidate, sandbox=self.sandbox,
                                      fit_config=fit_config, log=events.append, depth=depth,
                                      repairs=repairs)
        ticket = self.pool.submit(job) if job is not None and self.pool is not None else None
        return _Ahead(node, job, ticket, events, started)

    def _finish(self, ahead: _Ahead) -> Node:
        for event in ahead.events:
            if self.log is not None:
                self.log(event)
        if ahead.job is None:
            return done(ahead.node, ahead.started)
        outcome = run_fit_job(ahead.job) if ahead.ticket is None or self.pool is None else \
            self.pool.result(ahead.ticket)
        return finish_candidate(ahead.node, outcome, ahead.started)

    def _out_of_time(self) -> bool:
        return self.config.max_seconds is not None and \
            time.monotonic() - self.started >= self.config.max_seconds

    def _ask(self, call: Callable[[], T]) -> T:
        """Call the proposer, inside the budget (no node left: no point in asking)."""
        self._check_budget(evaluating=True)
        return call()

    def _check_budget(self, evaluating: bool = False) -> None:
        cfg, usage = self.config, self.proposer.usage
        if evaluating and self.evaluated >= cfg.max_nodes:
            raise BudgetExhausted(f"node budget reached: {self.evaluated} candidates evaluated")
        if cfg.max_llm_calls is not None and usage.llm_calls >= cfg.max_llm_calls:
            raise BudgetExhausted(f"LLM call budget reached: {usage.llm_calls} calls")
        if cfg.max_tokens is not None and usage.tokens >= cfg.max_tokens:
            raise BudgetExhausted(f"token budget reached: {usage.tokens} tokens")
        elapsed = time.monotonic() - self.started
        if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
            raise BudgetExhausted(f"time budget reached: {elapsed:.0f} s")

    def _saved(self, node: Node) -> None:
        if self.on_node is not None:
            self.on_node(node)

    def _event(self, kind: str, **fields: Any) -> None:
        if self.log is not None:
            self.log({"kind": kind, **fields})

    def _usage(self) -> dict[str, Any]:
        usage = self.proposer.usage
        return {"llm_calls": usage.llm_calls, "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens, "tokens": usage.tokens,
                "llm_seconds": round(usage.seconds, 3), "nodes": self.evaluated,
                "wall_seconds": round(time.monotonic() - self.started, 3)}


@dataclass
class _Ahead:
    """A candidate prepared (and its fit queued) before its turn."""

    node: Node
    job: FitJob | None
    ticket: Any
    events: list[dict[str, Any]]
    started: float


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
