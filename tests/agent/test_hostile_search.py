"""An LLM search fed hostile candidates completes, ranks the valid one, records the rest.

Each hostile module runs in the real sandbox and attacks the host through what it hands
back: it overwrites the runner's result file with a JSON array, a number, a wrongly typed
error record, a 10**5-deep nesting, or a model whose rate or identifiers are built to stall
or confuse the host. None may end the search: every one becomes a failed node whose error
says what the host refused, the valid decay model is fitted and ranked first, and the run
folder holds a tree.json naming it.
"""

from __future__ import annotations

import json
import time

import pytest
from decay_models import DECAY_SOURCE as VALID
from decay_models import decay_task

from agent.llm import LLMProposer
from agent.loop import Search, SearchConfig
from agent.scripted import ScriptedChatModel
from agent.store import RunStore
from mechanistic.fit import FitConfig

pytestmark = pytest.mark.hostile



def _forging(result: str, structure: str) -> str:
    """A module that replaces the runner's result file with ``result`` and exits at once."""
    return (f"# structure: hostile {structure}\nimport os, sys\nfrom mechanistic import Model\n"
            f"m = Model('x')\nwith open(sys.argv[2], 'w') as f:\n    f.write({result!r})\n"
            "os._exit(0)\n")


def _model_json(rate: dict, **extra) -> str:
    doc = {"format": "mmw.model/1", "name": "h", "states": [{"name": "x"}],
           "params": [{"name": "k", "prior": {"kind": "uniform", "low": 0, "high": 1}}],
           "flows": [{"name": "loss", "source": "x", "target": None, "rate": rate}],
           "init": {"x": {"int": 1}},
           "observables": [{"name": "x", "expr": {"sym": "x"},
                            "noise": {"kind": "gaussian", "sd": {"float": 1.0}}}]}
    doc.update(extra)
    return json.dumps({"ok": True, "model_json": json.dumps(doc), "variable": "m"})


X1 = {"op": "add", "args": [{"sym": "x"}, {"int": 1}]}
DEEP: dict = {"sym": "x"}
for _ in range(300):
    DEEP = {"op": "exp", "args": [DEEP]}

HOSTILE = {
    "array": ("[1, 2]", "must hold an object"),
    "number": ("42", "must hold an object"),
    "error_list": ('{"ok": false, "error": [1]}', "'error' must be dict"),
    "frame_abc": ('{"ok": false, "error": {"kind": "exception", "type": "X", "message": "m", '
                  '"frames": [{"lineno": "abc"}]}}', "'lineno' must be int"),
    "deep": ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    "pow": (_model_json({"op": "pow", "args": [X1, {"int": 100000}]}), "power above"),
    "nested": (_model_json(DEEP), "nested deeper"),
    "init_self": (_model_json({"sym": "x"}, init={"self": {"int": 1}}), "'self'"),
    "newline_name": (_model_json({"sym": "x"}, states=[{"name": "x"}, {"name": "x\n"}]),
                     "not valid"),
    "duplicate_keys": ('{"ok": true, "ok": false}', "appears twice"),
}


def fenced(source: str) -> str:
    return f"```python\n{source}```\n"


def test_hostile_candidates_become_failed_nodes_and_the_valid_one_wins(sandbox, tmp_path):
    modules = [_forging(result, name) for name, (result, _) in HOSTILE.items()]
    modules.insert(len(modules) // 2, VALID)
    chat = ScriptedChatModel(["Candidates:\n\n" + "\n".join(fenced(m) for m in modules)],
                             when_exhausted="no more")
    store = RunStore(tmp_path / "run")
    proposer = LLMProposer(chat, log=store.trajectory, max_followups=0)
    config = SearchConfig(initial=len(modules), max_nodes=len(modules), max_repairs=0,
                          expand=False, max_seconds=240,
                          fit=FitConfig(starts=2, adam_steps=80, lbfgs_steps=20, polish_starts=1))
    start = time.monotonic()
    result = Search(decay_task(), proposer, config, sandbox=sandbox, log=store.trajectory,
                    on_node=store.save_node).run()
    store.save_tree(result.nodes, {"stop_reason": result.stop_reason})
    assert time.monotonic() - start < 240
    assert len(result.nodes) == len(modules)
    assert result.best is not None and result.best.ok
    assert result.best.candidate.structure == "first-order decay"
    assert abs(result.best.fit["params"]["k"] - 0.2) < 0.03  # the truth is 0.2
    by_structure = {n.candidate.structure: n for n in result.nodes}
    for name, (_, reason) in HOSTILE.items():
        node = by_structure[f"hostile {name}"]
        assert not node.ok and node.error is not None, name
        assert reason in node.error.message, (name, node.error)
    tree = json.loads((tmp_path / "run" / "tree.json").read_text())
    assert tree["best"] == result.best.id
    assert sum(1 for n in tree["nodes"] if n["status"] == "ok") == 1
