"""Node.error is a ModuleError (issue 16): one typed error from every failing stage, written
to the run folder in the shapes node.json and tree.json have always held, and read back
from the folder (untrusted) as the same ModuleError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from decay_models import decay_task

from agent.core import Candidate, Feedback
from agent.evaluate import FitFailure, Node, feedback_for, finish_candidate
from agent.llm import render_feedback
from agent.store import RunStore
from mechanistic.errors import UntrustedDataError
from sandbox.runner import Frame, ModuleError, _from_run, _parse_result
from sandbox.spec import Guarantees, RunResult

SOURCE = "from mechanistic import Model\nm = Model('x')\nm.flow(x, None, kk * x)\n"
_G = Guarantees("test", True, "none", "none", "none", "none", True)


def _run(**changes) -> RunResult:
    base = dict(exit_code=0, signal=None, timed_out=False, limit_hit=None, stdout="",
                stderr="", stdout_truncated=False, stderr_truncated=False, files={},
                wall_s=0.25, backend="test", guarantees=_G)
    return RunResult(**{**base, **changes})


def _module_error(raw: dict) -> ModuleError:
    """The error the host makes of a sandboxed runner's result file."""
    error = _parse_result({"ok": False, "error": raw}, _run(), "simulator.py").error
    assert error is not None
    return error


NAME_ERROR = _module_error({
    "kind": "exception", "type": "NameError", "message": "name 'kk' is not defined",
    "frames": [{"lineno": 3, "name": "<module>", "line": "m.flow(x, None, kk * x)"}],
    "traceback": "Traceback (most recent call last):\n  ...\nNameError: name 'kk'\n"})
SYNTAX = _module_error({"kind": "syntax", "type": "SyntaxError", "message": "'(' was never "
                        "closed", "frames": [{"lineno": 2, "name": "<module>",
                                              "line": "m = Model('x'", "offset": 10}]})
CRASHED = _from_run(_run(exit_code=1, stderr="Traceback ...\nMemoryError\n"),
                    "simulator.py").error

# (the error, how it failed, the JSON node.json holds for it: the shapes written before
# Node.error became a ModuleError, spelled out here so a change of shape fails the test)
CASES = {
    "module": (NAME_ERROR, "invalid", {
        "kind": "exception", "type": "NameError", "message": "name 'kk' is not defined",
        "lineno": 3, "traceback": NAME_ERROR.traceback,
        "frames": [{"lineno": 3, "name": "<module>", "line": "m.flow(x, None, kk * x)",
                    "offset": None}]}),
    "syntax": (SYNTAX, "invalid", {
        "kind": "syntax", "type": "SyntaxError", "message": "'(' was never closed",
        "lineno": 2, "traceback": "", "frames": [{"lineno": 2, "name": "<module>",
                                                  "line": "m = Model('x'", "offset": 10}]}),
    "crashed": (CRASHED, "invalid", {
        "kind": "crashed", "type": "Crashed", "message": CRASHED.message, "lineno": None,
        "traceback": "Traceback ...\nMemoryError\n", "frames": []}),
    "serialization": (ModuleError.host("serialization", "SerializationError", "bad JSON"),
                      "invalid", {"kind": "serialization", "type": "SerializationError",
                                  "message": "bad JSON"}),
    "limit": (ModuleError.host("limit", "HostLimitError", "checks ran past 60 s"), "invalid",
              {"kind": "limit", "type": "HostLimitError", "message": "checks ran past 60 s"}),
    "fit": (FitFailure("ValueError", "the fit blew up", "Traceback ...\nValueError\n").error(),
            "fit_failed", {"kind": "fit", "type": "ValueError", "message": "the fit blew up",
                           "traceback": "Traceback ...\nValueError\n"}),
    "nonfinite": (ModuleError.host("fit", "NonFinite", "no finite likelihood"), "fit_failed",
                  {"kind": "fit", "type": "NonFinite", "message": "no finite likelihood"}),
}


def _saved(root: Path, nodes: list[Node]) -> RunStore:
    store = RunStore(root)
    store.write_task(decay_task(), {"agent": "test"})
    for node in nodes:
        store.save_node(node)
    store.save_tree(nodes, {"stop_reason": "test"})
    return store


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def test_a_failed_nodes_error_round_trips_through_the_run_folder(tmp_path: Path) -> None:
    nodes = [Node(Candidate(name, SOURCE, name), status, error=error)
             for name, (error, status, _) in CASES.items()]
    store = _saved(tmp_path / "run", nodes)
    tree = {row["id"]: row for row in json.loads((store.root / "tree.json").read_text())[
        "nodes"]}
    for name, (_, _, written) in CASES.items():
        node_json = json.loads((store.candidate_dir(name) / "node.json").read_text())
        assert node_json["error"] == written, name
        assert list(node_json["error"]) == list(written), name  # the keys, in order
        assert tree[name]["error"] == written, name

    back = {n.id: n for n in store.load_nodes()}
    for name, (error, status, _) in CASES.items():
        assert isinstance(back[name].error, ModuleError), name
        assert back[name].error == error and back[name].status == status, name
    # written again (a resumed search saves its nodes and tree): the same bytes
    again = _saved(tmp_path / "again", [back[n.id] for n in nodes])
    assert _files(again.root) == _files(store.root)


def test_every_stage_sets_a_module_error_and_the_feedback_carries_it() -> None:
    node = finish_candidate(Node(Candidate("f", SOURCE, "f"), "invalid"),
                            FitFailure("ValueError", "the fit blew up"), 0.0)
    assert node.status == "fit_failed" and node.error == ModuleError.host(
        "fit", "ValueError", "the fit blew up")
    feedback = feedback_for(node)
    assert feedback.error is node.error and feedback.message == "fitting failed: the fit blew up"

    invalid = Node(Candidate("n", SOURCE, "n"), "invalid", error=NAME_ERROR)
    feedback = feedback_for(invalid)
    assert feedback.error is NAME_ERROR
    assert feedback.message == ("NameError: name 'kk' is not defined\n"
                                "  line 3: m.flow(x, None, kk * x)")
    prompt = render_feedback(feedback, SOURCE)
    assert "The error points at line 3:\n    m.flow(x, None, kk * x)" in prompt


def test_a_syntax_error_in_a_prompt_points_at_its_column() -> None:
    prompt = render_feedback(Feedback("error", "", error=SYNTAX), SOURCE)
    assert prompt.endswith("The error points at line 2:\n    m = Model('x')\n             ^")


def test_a_host_error_has_no_frames_and_a_dict_is_not_an_error() -> None:
    with pytest.raises(ValueError, match="no module frames"):
        ModuleError("fit", "X", "y", (Frame(1, "<module>", ""),), compact=True)
    with pytest.raises(TypeError, match=r"ModuleError\.from_dict"):
        Node(Candidate("d", SOURCE, "d"), "invalid", error={"kind": "fit"})  # type: ignore


@pytest.mark.parametrize(("error", "message"), [
    ({"kind": "exception", "frames": {"a": 1}}, "'frames' must be an array"),
    ({"kind": "exception", "frames": ["x"]}, "frames[0] must be an object"),
    ({"frames": [{"lineno": "abc"}]}, "frames[0]: its line or offset is not a line number"),
    ({"frames": [{"lineno": 1, "offset": -2}]}, "is not a line number"),
    ({"frames": [{"lineno": 1, "name": 7}]}, "'name' and 'line' must be strings"),
    ({"kind": "fit", "lineno": True}, "error.lineno must be an integer"),  # the shape
    ({"kind": "fit", "lineno": -1}, "'lineno' is not a line number"),
])
def test_a_bad_error_in_node_json_is_one_clear_error(tmp_path: Path, error: dict,
                                                     message: str) -> None:
    store = _saved(tmp_path / "run", [Node(Candidate("bad", SOURCE, "bad"), "invalid",
                                           error=NAME_ERROR)])
    path = store.candidate_dir("bad") / "node.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "error": error}))
    with pytest.raises(UntrustedDataError, match=r"node\.json") as caught:
        store.load_nodes()
    assert message in str(caught.value)


def test_an_error_read_back_takes_the_runners_defaults(tmp_path: Path) -> None:
    store = _saved(tmp_path / "run", [Node(Candidate("x", SOURCE, "x"), "invalid",
                                           error=NAME_ERROR)])
    path = store.candidate_dir("x") / "node.json"
    for error, expected in [
        ({}, ModuleError.host("exception", "Error", "")),
        ("a failure told in text", ModuleError.host("unknown", "Error",
                                                    "a failure told in text")),
        ({"kind": "timeout", "type": "Timeout", "message": "slow", "frames": [{"lineno": 4}]},
         ModuleError("timeout", "Timeout", "slow", (Frame(4, "", ""),))),
    ]:
        path.write_text(json.dumps({**json.loads(path.read_text()), "error": error}))
        [node] = store.load_nodes()
        assert node.error == expected
