"""Hostile run folders read back by the host's own tools: ``RunStore`` (``--resume``,
what-if questions, the fitted candidate) and ``mmw sgnn``'s candidate selection. A bad
file is one clear UntrustedDataError naming it (a ValueError: the CLI prints one line),
never a KeyError, TypeError or a read of a file outside the run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hostile_helpers import SECRET, fifo, make_run, outside, within

from agent.store import RunStore
from mechanistic.errors import UntrustedDataError

pytestmark = pytest.mark.hostile


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs" / "r1")


def _node(run: Path, node_id: str = "good1") -> dict:
    return json.loads((run / "candidates" / node_id / "node.json").read_text())


def test_a_good_run_reads_back(run: Path) -> None:
    task, meta = RunStore(run).read_task()
    assert len(task.data.t) == 30 and meta["agent"] == "llm"
    nodes = {n.id: n for n in RunStore(run).load_nodes()}
    assert set(nodes) == {"good1", "bad2"} and nodes["good1"].fit["params"]["k"] == 0.2
    assert RunStore(run).read_tree()["best"] == "good1"


NODE_FILES = [  # (change to good1's node.json, what the error names)
    (lambda n: [n], "must be a node object"),
    (lambda n: {k: v for k, v in n.items() if k != "candidate"}, "candidate is missing"),
    (lambda n: {**n, "candidate": {**n["candidate"], "structure": ["a"]}},
     "candidate.structure must be a string"),
    (lambda n: {**n, "status": 3}, "status must be a string"),
    (lambda n: {**n, "depth": "0"}, "depth must be an integer"),
    (lambda n: {**n, "checks": {"a": 1}}, "checks must be an array"),
    (lambda n: {**n, "roles": {"S": 1}}, "roles['S'] must be a string"),
    (lambda n: {**n, "candidate": {**n["candidate"], "id": "../../x"}}, "not a candidate id"),
    (lambda n: {**n, "candidate": {**n["candidate"], "id": "bad2"}}, "not the folder's"),
    (lambda n: {**n, "error": ["a"]}, "error must be a string or an error object"),
    (lambda n: {**n, "error": {"frames": [{"lineno": "3"}]}}, "frames[0]: its line or "
     "offset is not a line number"),
]


@pytest.mark.parametrize(("change", "message"), NODE_FILES, ids=[m for _, m in NODE_FILES])
def test_resume_refuses_a_bad_node_json_in_one_error(run: Path, change, message: str) -> None:
    (run / "candidates" / "good1" / "node.json").write_text(json.dumps(change(_node(run))))
    with pytest.raises(UntrustedDataError, match=r"node\.json") as caught:
        RunStore(run).load_nodes()
    assert message in str(caught.value)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("fit.json", {"params": 3}, "params must be an object"),
    ("fit.json", '{"params": {}, "params": {}}', "appears twice"),
    ("fit.json", "[" * 50_000, "nested deeper"),
    ("node.json", "{", "not valid JSON"),
])
def test_resume_refuses_a_bad_candidate_file(run: Path, name: str, content: object,
                                             message: str) -> None:
    path = run / "candidates" / "good1" / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(UntrustedDataError, match=re.escape(message)):
        RunStore(run).load_nodes()


@pytest.mark.parametrize("where", ["candidates/good1", "candidates/good1/node.json",
                                   "candidates/good1/simulator.py",
                                   "candidates/good1/fit.json", "candidates"])
def test_resume_never_follows_a_link(run: Path, tmp_path: Path, where: str) -> None:
    import shutil

    secrets = outside(tmp_path)
    target = run / where
    copy = tmp_path / "copied"
    shutil.move(target, copy)  # the link points at a same-shaped copy outside the run
    target.symlink_to(copy if copy.is_dir() else secrets / "secret.txt")
    with pytest.raises(UntrustedDataError) as caught:
        RunStore(run).load_nodes()
    assert ("symbolic link" in str(caught.value) or "not a plain folder" in str(caught.value))
    assert SECRET not in str(caught.value)


def test_a_fifo_in_a_candidate_is_refused_promptly(run: Path) -> None:
    pipe = fifo(run / "candidates" / "good1" / "simulator.py")
    with pytest.raises(UntrustedDataError, match="not a regular file"):
        within(10, RunStore(run).load_nodes, [pipe])


@pytest.mark.parametrize(("task", "message"), [
    ({"train_until": "20"}, "train_until must be a number"),
    ({"train_until": 20, "data": "/etc/passwd"}, "must be a path inside"),
    ({"train_until": 20, "data": "../outside/secret.csv"}, "must be a path inside"),
    ({"train_until": 20, "inputs": "x"}, "inputs must be an array"),
    ({"train_until": 20, "seed": 1.5}, "seed must be an integer"),
    ([1], "must be a task object"),
])
def test_read_task_refuses_a_bad_task_json(run: Path, tmp_path: Path, task: object,
                                           message: str) -> None:
    outside(tmp_path)
    (run / "task.json").write_text(json.dumps(task))
    with pytest.raises(UntrustedDataError, match=re.escape(message)):
        RunStore(run).read_task()


@pytest.mark.parametrize("attack", ["link", "fifo"])
def test_read_task_refuses_a_data_file_that_is_not_plain(run: Path, tmp_path: Path,
                                                         attack: str) -> None:
    data = run / "data.csv"
    data.unlink()
    if attack == "link":
        data.symlink_to(outside(tmp_path) / "secret.csv")
    else:
        fifo(data)
    with pytest.raises(UntrustedDataError, match=r"symbolic link|not a regular file"):
        within(10, RunStore(run).read_task, [data])


@pytest.mark.parametrize(("tree", "message"), [
    ({"nodes": "abc"}, "nodes must be an array"),
    ({"nodes": [{"id": "good1", "status": None}]}, "status must be a string"),
    ({"best": "../../etc"}, "not a candidate id"),
    ({"best": 3}, "best must be a candidate id or null"),
])
def test_read_tree_refuses_a_bad_tree(run: Path, tree: object, message: str) -> None:
    (run / "tree.json").write_text(json.dumps(tree))
    with pytest.raises(UntrustedDataError, match=re.escape(message)):
        RunStore(run).read_tree()


def test_sgnn_selection_is_one_clear_error(run: Path, tmp_path: Path) -> None:
    from workbench.commands_sgnn import _sgnn_dir, select_candidates

    nodes, notice = select_candidates(run, top_k=3)
    assert [n["id"] for n in nodes] == ["good1"] and notice
    (run / "review.json").write_text(json.dumps({"candidates": {"good1": "yes"}}))
    with pytest.raises(UntrustedDataError, match="must be a decision object"):
        select_candidates(run, top_k=3)
    (run / "review.json").unlink()
    (run / "tree.json").write_text(json.dumps({"nodes": [["good1"]]}))
    with pytest.raises(UntrustedDataError, match="must be a node object"):
        select_candidates(run, top_k=3)
    (run / "tree.json").unlink()
    (run / "tree.json").symlink_to(outside(tmp_path) / "secret.json")
    with pytest.raises(ValueError, match="symbolic link"):
        select_candidates(run, top_k=3)
    import shutil

    shutil.rmtree(run / "sgnn")
    (run / "sgnn").symlink_to(tmp_path / "outside" / "folder")
    with pytest.raises(UntrustedDataError, match="symbolic link"):
        _sgnn_dir(run)


def test_non_finite_numbers_are_written_as_null_so_the_run_reads_back(tmp_path: Path) -> None:
    """NaN is not JSON: the run-folder reader refuses it, so the store never writes it."""
    from agent.core import Candidate
    from agent.evaluate import Node
    from workbench.review.runs import load_run

    run = make_run(tmp_path / "r1")
    store = RunStore(run)
    candidate = Candidate("nan3", "x = 1\n", "decay", details={
        "learned": [1.0, float("nan")], "distilled": [1.0, 2.0], "r2": float("inf")})
    store.save_node(Node(candidate, "ok", fit={"params": {"k": float("nan")}}))
    assert "NaN" not in (run / "candidates" / "nan3" / "distill.json").read_text()
    assert {n.id for n in store.load_nodes()} == {"good1", "bad2", "nan3"}
    view = load_run(run)
    assert view.unread == 0 and view.candidates["nan3"].distill["r2"] is None
