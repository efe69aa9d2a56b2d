"""The search loop driven by the scripted chat model: repairs, refinements, budgets.

Data come from known models (exponential decay, logistic growth) with seeded noise, so
what the loop should find is known independently of the loop.
"""

from __future__ import annotations

import json

import numpy as np
from decay_models import DECAY_SOURCE as DECAY
from decay_models import decay_task

from agent.core import Task
from agent.llm import LLMProposer
from agent.loop import Search, SearchConfig
from agent.scripted import ScriptedChatModel
from agent.store import RunStore
from mechanistic.data import ObservedData
from mechanistic.fit import FitConfig

FAST_FIT = FitConfig(starts=2, adam_steps=80, lbfgs_steps=20, polish_starts=1)


EXPONENTIAL = """\
# structure: exponential growth
from mechanistic import LogNormalNoise, LogUniform, Model

m = Model("exponential growth")
x = m.state("x")
r = m.param("r", LogUniform(0.01, 2.0))
x0 = m.param("x0", LogUniform(0.1, 100.0))
s = m.param("s", LogUniform(0.01, 1.0))
m.flow(None, x, r * x, name="growth")
m.init(x=x0)
m.observe("x", x, noise=LogNormalNoise(s))
"""

LOGISTIC = """\
# structure: logistic growth
# change: growth saturates at a carrying capacity K
from mechanistic import LogNormalNoise, LogUniform, Model

m = Model("logistic growth")
x = m.state("x")
r = m.param("r", LogUniform(0.01, 2.0))
K = m.param("K", LogUniform(1.0, 10000.0))
x0 = m.param("x0", LogUniform(0.1, 100.0))
s = m.param("s", LogUniform(0.01, 1.0))
m.flow(None, x, r * x * (1 - x / K), name="growth")
m.init(x=x0)
m.observe("x", x, noise=LogNormalNoise(s))
"""


def fenced(source: str) -> str:
    return f"Here is the model.\n\n```python\n{source}```\n"


def logistic_task() -> Task:
    t = np.arange(0.0, 40.0)
    rng = np.random.default_rng(2)
    r, K, x0 = 0.3, 500.0, 5.0
    truth = K / (1 + (K / x0 - 1) * np.exp(-r * t))
    y = truth * np.exp(rng.normal(0.0, 0.05, t.size))
    return Task("a bacterial colony grows in a flask with limited nutrients",
                ObservedData(t, {"x": y}), train_until=25.0)


def run(task: Task, answers: list, sandbox, tmp_path, **config) -> tuple:
    chat = ScriptedChatModel(answers)
    store = RunStore(tmp_path / "run")
    proposer = LLMProposer(chat, log=store.trajectory, max_followups=1)
    cfg = SearchConfig(fit=FAST_FIT, **config)
    result = Search(task, proposer, cfg, sandbox=sandbox, log=store.trajectory,
                    on_node=store.save_node).run()
    store.save_tree(result.nodes, {"stop_reason": result.stop_reason})
    return result, chat, store


def test_name_error_is_repaired_from_the_traceback(sandbox, tmp_path):
    broken = DECAY.replace("m.flow(x, None, k * x", "m.flow(x, None, kk * x")
    result, chat, store = run(decay_task(), [fenced(broken), fenced(DECAY)], sandbox, tmp_path,
                              initial=1, max_nodes=2)
    first, second = sorted(result.nodes, key=lambda n: n.repairs)
    assert first.status == "invalid" and first.error.type == "NameError"
    assert second.ok and second.candidate.origin == "repair"
    assert second.candidate.parent == first.id
    repair_prompt = "\n".join(m["content"] for m in chat.prompts[1])
    line = broken.splitlines().index("m.flow(x, None, kk * x, name=\"loss\")") + 1
    assert "NameError" in repair_prompt and f"line {line}" in repair_prompt
    assert "kk * x" in repair_prompt
    assert abs(second.fit["params"]["k"] - 0.2) < 0.02  # the truth is 0.2
    events = [e["kind"] for e in store.trajectory.events()]
    assert events.count("llm_call") == 2 and "sandbox_run" in events


def test_failed_structural_check_is_repaired(sandbox, tmp_path):
    # A constant outflow does not vanish at x = 0: the non-negativity check fails.
    unsafe = DECAY.replace('m.flow(x, None, k * x, name="loss")',
                           'm.flow(x, None, k * x0, name="loss")')
    result, chat, _ = run(decay_task(), [fenced(unsafe), fenced(DECAY)], sandbox, tmp_path,
                          initial=1, max_nodes=2)
    failed = next(n for n in result.nodes if n.status == "failed_checks")
    assert any(c["name"] == "non_negativity" and not c["passed"] for c in failed.checks)
    repair_prompt = "\n".join(m["content"] for m in chat.prompts[1])
    assert "non_negativity" in repair_prompt
    assert result.best is not None and result.best.candidate.origin == "repair"


def test_refinement_improves_validation_error(sandbox, tmp_path):
    result, _, _ = run(logistic_task(), [fenced(EXPONENTIAL), fenced(LOGISTIC)], sandbox,
                       tmp_path, initial=1, max_nodes=2, refinements=1)
    parent = next(n for n in result.nodes if n.candidate.origin == "propose")
    child = next(n for n in result.nodes if n.candidate.origin == "refine")
    assert parent.ok and child.ok and child.candidate.parent == parent.id
    assert child.validation_error < 0.5 * parent.validation_error
    tree = json.loads((tmp_path / "run" / "tree.json").read_text())
    assert tree["nodes"][0]["id"] == child.id  # ranked best first


def test_node_budget_ends_the_search_with_the_best_so_far(sandbox, tmp_path):
    three = "\n".join(fenced(s) for s in (DECAY, DECAY.replace("decay", "decay two"),
                                          DECAY.replace("decay", "decay three")))
    result, _, _ = run(decay_task(), [three], sandbox, tmp_path, initial=3, max_nodes=2)
    assert result.stop_reason.startswith("node budget reached")
    assert len(result.nodes) == 2 and result.best is not None and result.best.ok


def test_garbage_answers_do_not_crash_the_loop(sandbox, tmp_path):
    # Prose, then code on the follow-up; later refinements that never contain code.
    answers = ["I am not sure what you mean.", fenced(DECAY), "no code here either",
               "```\n}}}{{{ not python\n```"]
    result, chat, _ = run(decay_task(), answers, sandbox, tmp_path / "a", initial=1,
                          max_nodes=3)
    assert chat.calls == 4
    assert result.best is not None and result.best.ok
    assert result.stop_reason.startswith("search space exhausted")
    # Nothing usable at all: a failed node with the reason (its repairs give up too),
    # and the search ends with a reason, not an exception.
    result, _, _ = run(decay_task(), ["no", "```\n}}}{{{\n```", "no", "still no"], sandbox,
                       tmp_path / "b", initial=1, max_nodes=3)
    [node] = result.nodes
    assert node.status == "invalid" and node.error.kind == "answer"
    assert "does not declare a model" in node.error.message and result.best is None
    assert "no proposed structure" in result.stop_reason


def test_resume_does_not_redo_finished_nodes(sandbox, tmp_path):
    task = decay_task()
    result, _, store = run(task, [fenced(DECAY)], sandbox, tmp_path, initial=1, max_nodes=1)
    finished = store.load_nodes()
    assert [n.id for n in finished] == [n.id for n in result.nodes]
    chat = ScriptedChatModel([])  # a resumed run must not ask for the same proposals again
    resumed = Search(task, LLMProposer(chat), SearchConfig(fit=FAST_FIT, max_nodes=1),
                     sandbox=sandbox, resume=finished).run()
    assert chat.calls == 0
    assert resumed.best is not None and resumed.best.id == result.best.id


def test_the_search_seed_seeds_every_fit(sandbox, tmp_path):
    """SearchConfig.seed reaches the fitter: the multi-start draws (and so the start losses)
    repeat for one seed and differ for another."""
    losses = {}
    for i, seed in enumerate((0, 0, 5)):
        result, _, _ = run(decay_task(), [fenced(DECAY)], sandbox, tmp_path / f"run{i}",
                           initial=1, max_nodes=1, expand=False, seed=seed)
        (node,) = result.nodes
        assert node.fit["config"]["seed"] == seed
        losses.setdefault(seed, []).append(node.fit["start_losses"])
    assert losses[0][0] == losses[0][1]
    assert losses[5][0] != losses[0][0]


def test_distillation_children_join_the_search(sandbox, tmp_path):
    """With distill on, the loop asks the distiller for children of an expanded node and
    evaluates them like any candidate (a stub distiller stands in for the slow hybrid fit)."""
    from agent.core import Candidate

    asked = []

    class StubDistiller:
        def refine(self, task, node, n):
            asked.append(node.id)
            if node.candidate.proposer == "distill":
                return []
            return [Candidate(id="dst-logistic", source=LOGISTIC, structure="distilled",
                              origin="refine", parent=node.id, proposer="distill")]

    chat = ScriptedChatModel([fenced(EXPONENTIAL)] + ["no refinement today"] * 4)
    proposer = LLMProposer(chat, max_followups=0)
    search = Search(logistic_task(), proposer,
                    SearchConfig(fit=FAST_FIT, initial=1, max_nodes=3, distill=True),
                    sandbox=sandbox)
    search.distiller = StubDistiller()
    result = search.run()
    ids = {n.id: n for n in result.nodes}
    assert "dst-logistic" in ids and ids["dst-logistic"].ok
    assert ids["dst-logistic"].candidate.parent in asked
    assert result.best.id == "dst-logistic"  # the truth's structure wins
