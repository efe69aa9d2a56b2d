"""The agents a benchmark compares, behind one small seam: ``make_agent(name).run(...)``.

Every agent sees the same thing a scientist would hand over (the task's description and
its rows up to ``validate_until``; the test window never) and returns an
:class:`AgentOutcome`: a forecast of every observed column on ``task.times``, one
counterfactual trajectory per what-if question, its translation of each question, and
comparable parameters keyed by role. What the agent could not do is data, not an
exception: an agent without a valid simulator returns ``valid=False`` with the reason,
so one bad job never stops a benchmark.

The agents, and why each is there:

* ``offline`` - the offline search (library motifs and discovery from the data; propose
  -> repair -> refine, best-first) under the budget: the system under test without an
  LLM. Distillation of neural terms, on in ``mmw model``, is off here: its hybrid fits
  would not fit in a bench job's budget.
* ``offline-lomo`` - ``offline`` with the task's own motif (``OWN_MOTIFS``) removed from
  the library: can the search build what it does not already have?
* ``library`` - the same search with the library's motifs only (the agent before
  discovery), for comparison.
* ``llm`` - the same search with an LLM proposer (langchain, any provider or any
  OpenAI-compatible URL, from :class:`LLMSettings`).
* ``zero-shot`` - one library proposal, no repair, no search: what structure search adds.
* ``repair-only`` - one library proposal with up to two repairs, no refinement: what the
  refinement tree adds on top of fixing broken code.
* ``neural`` - a purely neural forecaster (:mod:`evals.neural`), no mechanism: what a
  mechanism buys, especially for counterfactuals.
* ``oracle`` - the true structure (wide priors) fitted on the same training window: the
  ceiling that a perfect structure search reaches with the same data and fit settings.
* ``wrong`` - a deliberately misspecified structure fitted the same way: a sanity floor
  the metrics must separate from the oracle.

Counterfactuals of search agents are their own translation of the plain-language
question (``proposer.intervention``) simulated with their best fit; the oracle and the
wrong structure get the ground-truth interventions (the wrong one only where its names
exist), so they measure structure, not translation.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from agent.core import Proposer, TrajectoryLog
from agent.evaluate import Node
from agent.loop import Search, SearchConfig, SearchResult
from mechanistic.errors import ModelError
from mechanistic.files import json_data
from mechanistic.fit import BENCH_FIT, FitConfig, FitResult, fit_model
from mechanistic.interventions import Intervention, validate_interventions
from mechanistic.model import Model
from sandbox.spec import Sandbox

if TYPE_CHECKING:
    from evals.task import BenchTask

__all__ = [
    "AgentOutcome",
    "AgentSpec",
    "BenchAgent",
    "Budget",
    "LLMSettings",
    "agent_names",
    "applicable",
    "failed",
    "make_agent",
    "register_agent",
]

# Leave-one-motif-out: the library motif that is each fully observed task's own structure
# (the truth's textbook form), removed from the offline agent's library by ``offline-lomo``.
OWN_MOTIFS: dict[str, tuple[str, ...]] = {
    "epi-seir-delay-full": ("SEIR",),
    "epi-age-full": ("SEIR",),
    "onc-lung-chemoradio-full": ("tumour-drug",),
    "eco-voles-full": ("Rosenzweig-MacArthur",),
    "eco-foodchain-full": ("food-chain",),
    "pk-saturable-full": ("pk-michaelis-menten",),
    "phys-ivgtt-full": ("glucose-insulin",),
}

_DEFAULT_FIT = BENCH_FIT  # mechanistic/fit.py holds every default fit setting


# ------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class Budget:
    """What one agent may spend on one task; the same budget for every agent in a run."""

    max_seconds: float = 300.0
    max_nodes: int = 5
    fit: FitConfig = _DEFAULT_FIT

    def __post_init__(self) -> None:
        if not (isinstance(self.max_seconds, int | float) and math.isfinite(self.max_seconds)
                and self.max_seconds > 0):
            raise ValueError(f"Budget.max_seconds must be a positive number, "
                             f"got {self.max_seconds!r}")
        if not isinstance(self.max_nodes, int) or isinstance(self.max_nodes, bool) \
                or self.max_nodes < 1:
            raise ValueError(f"Budget.max_nodes must be an integer >= 1, got {self.max_nodes!r}")
        if not isinstance(self.fit, FitConfig):
            raise ValueError(f"Budget.fit must be a FitConfig, got {type(self.fit).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"max_seconds": self.max_seconds, "max_nodes": self.max_nodes,
                "fit": self.fit.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        unknown = set(data) - {"max_seconds", "max_nodes", "fit"}
        if unknown:
            raise ValueError(f"Budget: unknown field(s) {sorted(unknown)}")
        fit = dict(data.get("fit") or {})
        if fit.get("solver") is not None:
            raise ValueError("Budget.fit.solver: only the automatic solver (null) is supported")
        fit.pop("solver", None)
        try:
            fit_config = FitConfig(**fit) if fit else _DEFAULT_FIT
        except TypeError as exc:
            raise ValueError(f"Budget.fit: {exc}") from None
        return cls(max_seconds=float(data.get("max_seconds", 300.0)),
                   max_nodes=int(data.get("max_nodes", 5)), fit=fit_config)


@dataclass(frozen=True)
class LLMSettings:
    """Which chat model the ``llm`` agent talks to.

    ``base_url`` set: any OpenAI-compatible endpoint, ``model`` is its model name and the
    key is read from ``$api_key_env``. ``base_url`` unset: ``model`` is a langchain
    ``provider:model`` spec (``openai:gpt-4o``, ``anthropic:claude-sonnet-4-5``).
    """

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = 0.7
    max_tokens: int | None = 8192
    timeout_s: float | None = 180.0
    max_retries: int = 2
    prompt_version: str = "v1"
    structured: bool = False              # JSON specifications (agent/structured)
    context_window: int | None = None     # the served model's window, when known

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("LLMSettings.model: name the model, e.g. 'openai:gpt-4o' or, with "
                             "base_url, the served model's name")
        if self.base_url is None and ":" not in self.model:
            raise ValueError(f"LLMSettings.model: without base_url the model is a "
                             f"'provider:model' spec, got {self.model!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url,
                "api_key_env": self.api_key_env, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "timeout_s": self.timeout_s,
                "max_retries": self.max_retries, "prompt_version": self.prompt_version,
                "structured": self.structured, "context_window": self.context_window}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMSettings:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"LLMSettings: unknown field(s) {sorted(unknown)}")
        return cls(**dict(data))


# ----------------------------------------------------------------------------- outcome
Series = dict[str, np.ndarray]


@dataclass(frozen=True)
class AgentOutcome:
    """What one agent produced on one task and seed; failures are ``valid=False`` + reason.

    ``forecast`` and every entry of ``counterfactuals`` hold the predicted noise-free
    observed means on ``task.times`` per observed column (None: nothing to offer).
    ``detail`` carries agent-specific notes (stop reason, best node, why a question could
    not be translated) for the report; metrics never read it.
    """

    agent: str
    valid: bool
    reason: str
    structure: str | None
    nodes: int
    valid_nodes: int
    repairs: int
    llm_calls: int
    tokens: int
    wall_s: float
    forecast: Series | None
    counterfactuals: tuple[Series | None, ...]
    interventions: tuple[list[dict], ...]
    params: dict[str, float]
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.valid, bool):
            raise ValueError(f"AgentOutcome.valid must be a bool, got {self.valid!r}")
        if not self.valid and not self.reason:
            raise ValueError("AgentOutcome.reason: an invalid outcome must say why")
        for name in ("nodes", "valid_nodes", "repairs", "llm_calls", "tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"AgentOutcome.{name} must be an integer >= 0, got {value!r}")
        if self.valid_nodes > self.nodes:
            raise ValueError("AgentOutcome.valid_nodes cannot exceed nodes")
        if len(self.interventions) != len(self.counterfactuals):
            raise ValueError("AgentOutcome.interventions: one entry per counterfactual")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays become lists, non-finite numbers null."""
        return {
            "agent": self.agent, "valid": self.valid, "reason": self.reason,
            "structure": self.structure, "nodes": self.nodes, "valid_nodes": self.valid_nodes,
            "repairs": self.repairs, "llm_calls": self.llm_calls, "tokens": self.tokens,
            "wall_s": round(self.wall_s, 3), "forecast": _series_json(self.forecast),
            "counterfactuals": [_series_json(c) for c in self.counterfactuals],
            "interventions": [list(i) for i in self.interventions],
            "params": {k: _num_json(v) for k, v in self.params.items()},
            "detail": json_data(self.detail),
        }


def _num_json(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _series_json(series: Series | None) -> dict[str, list[float | None]] | None:
    if series is None:
        return None
    return {k: [_num_json(v) for v in np.asarray(a, dtype=float)] for k, a in series.items()}


def failed(agent: str, task: BenchTask, reason: str, started: float,
           **counts: Any) -> AgentOutcome:
    """An outcome for an agent that produced no valid simulator."""
    n = len(task.counterfactuals)
    return AgentOutcome(
        agent=agent, valid=False, reason=reason, structure=counts.pop("structure", None),
        nodes=counts.pop("nodes", 0), valid_nodes=counts.pop("valid_nodes", 0),
        repairs=counts.pop("repairs", 0), llm_calls=counts.pop("llm_calls", 0),
        tokens=counts.pop("tokens", 0), wall_s=time.perf_counter() - started,
        forecast=None, counterfactuals=(None,) * n, interventions=([],) * n, params={},
        detail=counts.pop("detail", {}))


# ------------------------------------------------------------------------------ seam
class BenchAgent(Protocol):
    """One contender. ``run`` never raises for the agent's own failures."""

    name: str

    def run(self, task: BenchTask, seed: int, budget: Budget, sandbox: Sandbox | None,
            workdir: Path) -> AgentOutcome:
        ...


# ---------------------------------------------------------------------------- registry
AgentFactory = Callable[["LLMSettings | None"], BenchAgent]


@dataclass(frozen=True)
class AgentSpec:
    """How to build one bench agent and where it applies.

    ``factory(llm)`` gets the run's LLM settings (None when none were given) and returns
    the agent; ``applies(task)`` says whether it can run on a task (the oracle needs the
    truth); ``needs_sandbox`` opens a sandbox for agents that execute generated code.
    """

    factory: AgentFactory
    applies: Callable[[BenchTask], bool] = lambda task: True
    needs_sandbox: bool = True
    doc: str = ""


_REGISTRY: dict[str, AgentSpec] = {}


def register_agent(name: str, spec: AgentSpec, *, replace: bool = False) -> None:
    """Make ``spec`` available as ``mmw bench run --agents name``; a plugin module calls
    this on import (see :mod:`mechanistic.plugins`), so spawned workers have it too."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"an agent name is letters, digits, '-' and '_', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a bench agent called {name!r} is already registered")
    if not isinstance(spec, AgentSpec):
        raise ValueError(f"register_agent needs an AgentSpec, got {type(spec).__name__}")
    _REGISTRY[name] = spec


def agent_names() -> tuple[str, ...]:
    """Every registered agent, the built-in ones first, in registration order."""
    from mechanistic.plugins import load_plugins

    load_plugins()
    return tuple(_REGISTRY)


def _spec(name: str) -> AgentSpec:
    names = agent_names()
    if name not in names:
        raise ValueError(f"unknown agent {name!r}; choose from {', '.join(names)}")
    return _REGISTRY[name]


def applicable(agent: str, task: BenchTask) -> bool:
    """Whether ``agent`` can run on ``task`` (its spec's ``applies``)."""
    return bool(_spec(agent).applies(task))


def needs_sandbox(agent: str) -> bool:
    return _spec(agent).needs_sandbox


def make_agent(name: str, llm: LLMSettings | Mapping[str, Any] | None = None) -> BenchAgent:
    """The agent called ``name``; ValueError for an unknown name or an unconfigured LLM."""
    spec = _spec(name)
    settings = llm if llm is None or isinstance(llm, LLMSettings) else \
        LLMSettings.from_dict(llm)
    return spec.factory(settings)


def _llm_agent(llm: LLMSettings | None) -> BenchAgent:
    if llm is None:
        raise ValueError("the llm agent needs a chat model: give --llm-model (a "
                         "'provider:model' spec, or a model name with --base-url)")
    _check_key(llm)
    return SearchAgent("llm", _llm_factory(llm), _full_search)


def _llm_structured_agent(llm: LLMSettings | None) -> BenchAgent:
    """The ``llm`` agent in structured mode, under its own name, so that one bench run
    puts both modes of the same model side by side on the leaderboard."""
    if llm is None:
        raise ValueError("the llm-structured agent needs a chat model: give --llm-model "
                         "(a 'provider:model' spec, or a model name with --base-url)")
    _check_key(llm)
    return SearchAgent("llm-structured", _llm_factory(replace(llm, structured=True)),
                       _full_search)


def _neural_agent(llm: LLMSettings | None) -> BenchAgent:
    from evals.neural import NeuralAgent

    return NeuralAgent()


def _register_builtin() -> None:
    """The agents this module defines (the module docstring says why each is there)."""
    search: dict[str, tuple[ProposerFactory, ConfigFactory, bool]] = {
        "offline": (_offline_factory, _full_search, False),
        "offline-lomo": (_offline_factory, _full_search, True),
        "library": (_library_factory, _full_search, False),
        "zero-shot": (_library_factory, _zero_shot, False),
        "repair-only": (_library_factory, _repair_only, False),
    }
    for name, (factory, config, leave_out) in search.items():
        spec = AgentSpec(lambda llm, n=name, f=factory, c=config, lo=leave_out:
                         SearchAgent(n, f, c, leave_out=lo))
        if leave_out:  # only where the task's own motif is known
            spec = replace(spec, applies=lambda task: task.name in OWN_MOTIFS)
        register_agent(name, spec)
    register_agent("llm", AgentSpec(_llm_agent))
    register_agent("llm-structured", AgentSpec(_llm_structured_agent))
    register_agent("neural", AgentSpec(_neural_agent, needs_sandbox=False))
    register_agent("oracle", AgentSpec(lambda llm: StructureAgent("oracle"),
                                       applies=lambda task: task.truth_model is not None,
                                       needs_sandbox=False))
    register_agent("wrong", AgentSpec(lambda llm: StructureAgent("wrong"),
                                      applies=lambda task: task.wrong_model is not None,
                                      needs_sandbox=False))


# ------------------------------------------------------------------------ search agents
ProposerFactory = Callable[..., Proposer]
ConfigFactory = Callable[[Budget, int], SearchConfig]


def _full_search(budget: Budget, seed: int) -> SearchConfig:
    return SearchConfig(initial=3, max_nodes=budget.max_nodes, refinements=1, max_repairs=1,
                        max_seconds=budget.max_seconds, fit=budget.fit, seed=seed)


def _zero_shot(budget: Budget, seed: int) -> SearchConfig:
    return SearchConfig(initial=1, max_nodes=1, max_repairs=0, expand=False,
                        max_seconds=budget.max_seconds, fit=budget.fit, seed=seed)


def _repair_only(budget: Budget, seed: int) -> SearchConfig:
    return SearchConfig(initial=1, max_nodes=min(3, budget.max_nodes), max_repairs=2,
                        expand=False, max_seconds=budget.max_seconds, fit=budget.fit,
                        seed=seed)


def _library_factory(seed: int, workdir: Path, exclude: tuple[str, ...] = ()) -> Proposer:
    from agent.proposers import ProposerSettings, make_proposer

    return make_proposer("library", ProposerSettings(seed=seed, exclude_motifs=exclude))


def _offline_factory(seed: int, workdir: Path, exclude: tuple[str, ...] = ()) -> Proposer:
    from agent.proposers import ProposerSettings, make_proposer

    return make_proposer("offline", ProposerSettings(seed=seed, exclude_motifs=exclude))


def _check_key(settings: LLMSettings) -> None:
    """Fail before any job runs when a remote endpoint's key is missing (local and
    private-network servers need none, as in ``LLMProposer.from_base_url``)."""
    import os

    from agent.llm import _is_local

    if settings.base_url and not os.environ.get(settings.api_key_env) \
            and not _is_local(settings.base_url):
        raise ValueError(f"the llm agent needs ${settings.api_key_env} set to the API key "
                         f"for {settings.base_url}")


def _llm_factory(settings: LLMSettings) -> ProposerFactory:
    """The LLM proposer from the one registry, with the bench's chat settings."""
    def build(seed: int, workdir: Path, exclude: tuple[str, ...] = ()) -> Proposer:
        from agent.llm import ChatSettings
        from agent.proposers import ProposerSettings, make_proposer

        chat = ChatSettings(temperature=settings.temperature, max_tokens=settings.max_tokens,
                            timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                            context_window=settings.context_window)
        return make_proposer("llm", ProposerSettings(
            seed=seed, llm=settings.model, base_url=settings.base_url,
            api_key_env=settings.api_key_env, prompt_version=settings.prompt_version,
            chat=chat, structured=settings.structured,
            log=TrajectoryLog(workdir / "trajectory.jsonl")))
    return build


@dataclass(frozen=True)
class SearchAgent:
    """A proposer driven by :class:`agent.loop.Search`; the configs above set its breadth."""

    name: str
    proposer_factory: ProposerFactory
    config: ConfigFactory
    leave_out: bool = False          # remove the task's own motif (OWN_MOTIFS)

    def run(self, task: BenchTask, seed: int, budget: Budget, sandbox: Sandbox | None,
            workdir: Path) -> AgentOutcome:
        started = time.perf_counter()
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            exclude = OWN_MOTIFS.get(task.name, ()) if self.leave_out else ()
            proposer = self.proposer_factory(seed, workdir, exclude)
        except ValueError as exc:  # an unconfigured LLM: say so, as data
            return failed(self.name, task, f"cannot build the proposer: {exc}", started)
        agent_task = task.agent_task(seed)
        owned = None
        seen: dict[str, Node] = {}
        try:
            if sandbox is None:
                from sandbox.auto import open_sandbox

                sandbox = owned = open_sandbox()
            search = Search(agent_task, proposer, self.config(budget, seed), sandbox=sandbox,
                            log=TrajectoryLog(workdir / "trajectory.jsonl"),
                            on_node=lambda n: seen.__setitem__(n.id, n))
            result = search.run()
        except Exception as exc:  # a dead sandbox or LLM endpoint mid-search
            # keep what was finished: the best node so far still answers, the error is noted
            result = SearchResult(list(seen.values()),
                                  f"search failed: {type(exc).__name__}: {exc}", {})
            if result.best is None:
                return failed(self.name, task, result.stop_reason, started,
                              llm_calls=proposer.usage.llm_calls, tokens=proposer.usage.tokens,
                              nodes=len(seen), detail={
                                  "traceback": traceback.format_exc(limit=4)})
        finally:
            if owned is not None:
                owned.close()
        nodes = result.nodes
        counts = {"nodes": len(nodes), "valid_nodes": sum(n.ok for n in nodes),
                  "repairs": sum(n.candidate.origin == "repair" for n in nodes)}
        detail: dict[str, Any] = {"stop_reason": result.stop_reason,
                                  "ranked": [[n.candidate.structure, n.validation_error]
                                             for n in result.ranked],
                                  "verdict": result.verdict.to_dict() if result.verdict
                                  else None}
        best = result.best
        if best is None or best.fit_result is None:
            return failed(self.name, task, f"no valid simulator: {result.stop_reason}",
                          started, llm_calls=proposer.usage.llm_calls,
                          tokens=proposer.usage.tokens, detail=detail, **counts)
        fit = best.fit_result
        detail["best"] = best.id
        detail["best_proposer"] = best.candidate.proposer
        detail["best_by_proposer"] = {}
        for n in result.ranked:  # best first: the first of each proposer is its best
            detail["best_by_proposer"].setdefault(
                n.candidate.proposer or "?", [n.id, n.candidate.structure, n.validation_error])
        try:
            forecast = _observed(fit, task, ())
        except Exception as exc:  # the fitted model cannot be simulated on the task's grid
            return failed(self.name, task, f"forecast failed: {type(exc).__name__}: {exc}",
                          started, structure=best.candidate.structure,
                          llm_calls=proposer.usage.llm_calls, tokens=proposer.usage.tokens,
                          detail=detail, **counts)
        cfs: list[Series | None] = []
        items_json: list[list[dict]] = []
        problems: list[str | None] = []
        for cf in task.counterfactuals:
            try:
                items = proposer.intervention(agent_task, best.candidate,
                                              best.model_json or "", cf.question)
                cfs.append(_observed(fit, task, items))
                items_json.append([i.to_dict() for i in items])
                problems.append(None)
            except Exception as exc:  # an untranslatable question is a result, not a crash
                cfs.append(None)
                items_json.append([])
                problems.append(f"{type(exc).__name__}: {exc}")
        detail["cf_problems"] = problems
        roles = dict(best.candidate.roles)
        if not roles and best.model is not None:  # an LLM's module: roles from its names
            from agent.library.counterfactual import infer_roles

            m = best.model
            roles = infer_roles(m.state_names, m.param_names, m.control_names)
        params = {role: fit.params[roles[role]] for role in task.recover
                  if roles.get(role) in fit.params}
        return AgentOutcome(
            agent=self.name, valid=True, reason="", structure=best.candidate.structure,
            llm_calls=proposer.usage.llm_calls, tokens=proposer.usage.tokens,
            wall_s=time.perf_counter() - started, forecast=forecast,
            counterfactuals=tuple(cfs), interventions=tuple(items_json), params=params,
            detail=detail, **counts)


# --------------------------------------------------------------------- structure agents
def fit_structure(model: Model, task: BenchTask, seed: int, config: FitConfig) -> FitResult:
    """``model`` fitted like an agent's candidate: rows ``t <= train_until`` fitted, the
    validation rows scored, the test rows never seen, the study's conditions applied."""
    data = task.agent_task(seed).data
    data, _ = data.split(task.validate_until)
    controls = {k: v for k, v in task.controls.items() if k in model.controls_}
    return fit_model(model, data, replace(config, seed=seed), train_until=task.train_until,
                     interventions=task.conditions, controls=controls or None)


def _observed(fit: FitResult, task: BenchTask,
              interventions: Sequence[Intervention]) -> Series:
    sim = fit.simulate(task.times, interventions=interventions)
    out = {}
    for col in task.observed:
        values = sim.observable(col)[0].detach().numpy().astype(float)
        out[col] = values
    return out


@dataclass(frozen=True)
class StructureAgent:
    """A fixed structure fitted once: the truth's (``oracle``) or ``task.wrong_model``.

    Both answer counterfactuals with the ground-truth interventions, so their cf error is
    the structure's error alone; ``wrong`` answers None where a name it would need is
    missing from its model.
    """

    name: str

    def run(self, task: BenchTask, seed: int, budget: Budget, sandbox: Sandbox | None,
            workdir: Path) -> AgentOutcome:
        started = time.perf_counter()
        model = task.truth_model if self.name == "oracle" else task.wrong_model
        if model is None:
            return failed(self.name, task, f"the task has no {self.name} structure", started)
        try:
            fit = fit_structure(model, task, seed, budget.fit)
        except Exception as exc:  # a fit failure of the fixed structure is a result too
            return failed(self.name, task, f"fit failed: {type(exc).__name__}: {exc}",
                          started, structure=model.name, nodes=1)
        if not math.isfinite(fit.log_likelihood):
            return failed(self.name, task, f"no finite likelihood: {fit.message}", started,
                          structure=model.name, nodes=1)
        cfs: list[Series | None] = []
        items_json: list[list[dict]] = []
        for cf in task.counterfactuals:
            try:
                validate_interventions(model, cf.interventions)
            except ModelError:
                cfs.append(None)
                items_json.append([])
                continue
            cfs.append(_observed(fit, task, [*task.conditions, *cf.interventions]))
            items_json.append([i.to_dict() for i in cf.interventions])
        params = {role: fit.params[name] for role, name in task.recover.items()
                  if name in fit.params}
        return AgentOutcome(
            agent=self.name, valid=True, reason="", structure=model.name, nodes=1,
            valid_nodes=1, repairs=0, llm_calls=0, tokens=0,
            wall_s=time.perf_counter() - started,
            forecast=_observed(fit, task, task.conditions), counterfactuals=tuple(cfs),
            interventions=tuple(items_json), params=params,
            detail={"fit_params": dict(fit.params), "validation_error": fit.validation_error})


_register_builtin()
