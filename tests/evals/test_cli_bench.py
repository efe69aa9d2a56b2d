"""``mmw bench list|run|report``: listing, clear errors, progress, resume, outputs.

The fast tests swap the executor for an in-process one that fakes results (the CLI's
plumbing is what they check); the end-to-end test runs the oracle and the neural baseline
on one suite task in real worker processes and is marked slow (about a minute on two
shared cores, dominated by the oracle's multi-start fit), and so is the same on a tiny
task loaded with --tasks-dir (about 15 s).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evals.executor import Job, failure_result
from workbench.cli import app

TASK = "epi-seir-town-partial"


def _invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_list_json_names_tasks_and_agents() -> None:
    r = _invoke("bench", "list", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    names = [t["name"] for t in data["tasks"]]
    assert TASK in names and "oracle" in data["agents"]
    task = data["tasks"][names.index(TASK)]
    assert task["domain"] == "epidemiology" and task["counterfactuals"]


@pytest.mark.parametrize(("args", "message"), [
    (["--agents", "oracle,nosuch"], "unknown agent(s) nosuch; agents: offline"),
    (["--agents", "oracle", "--tasks", "no-such-*"], "no task matches 'no-such-*'; tasks: "),
    (["--agents", "llm"], "--agents llm needs --llm-model"),
    (["--agents", "oracle", "--address", "10.0.0.1:6379"], "--address is for --executor ray"),
    (["--agents", "oracle", "--executor", "slurm"], "--executor 'slurm': use local or ray"),
])
def test_run_errors_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    r = _invoke("bench", "run", "--out", tmp_path / "out", *args)
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())
    assert not (tmp_path / "out").exists()


class FakeExecutor:
    """Runs nothing real: an ok row per job (an error for the neural agent), in process."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def run(self, fn: Callable[[Job], dict[str, Any]], jobs: Sequence[Job],
            timeout_s: Callable[[Job], float]) -> Iterator[tuple[Job, dict[str, Any]]]:
        for job in jobs:
            assert timeout_s(job) == pytest.approx(job.budget.max_seconds * 1.5 + 120)
            self.calls.append(job.key)
            if job.agent == "neural":
                yield job, failure_result(job, "error", "RuntimeError: fake", 0.1)
                continue
            yield job, {**job.describe(), "status": "ok", "reason": "", "wall_s": 1.0,
                        "metrics": {"valid": True, "forecast_skill": 0.5 + job.seed,
                                    "cf_error": 0.1},
                        "series": None, "outcome": None}


def test_run_prints_progress_resumes_and_writes_the_run_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.commands_bench as bench

    calls: list[str] = []
    monkeypatch.setattr(bench, "_executor",
                        lambda kind, workers, address: FakeExecutor(calls))
    out = tmp_path / "run"
    args = ("bench", "run", "--tasks", TASK, "--agents", "oracle,neural", "--seeds", 2,
            "--out", out, "--budget-seconds", 10, "--max-nodes", 2)
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    assert len(calls) == 4
    assert f"[4/4] {TASK}__neural__s1: error" in r.output
    assert "forecast skill" in r.output and "2 ok, 2 error" in r.output
    for name in ("bench.json", "results.json", "leaderboard.md", "timing.md", "report.html"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "bench.json").read_text())
    assert manifest["budget"]["max_seconds"] == 10 and manifest["seeds"] == [0, 1]
    assert manifest["tasks"][TASK]["domain"] == "epidemiology"
    board = (out / "leaderboard.md").read_text()
    assert "| oracle | 2 | 2 | 0 | 0 | 0 | 100% [100, 100] (2)" in board

    calls.clear()
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    assert calls == [] and "reused 4 finished job(s)" in r.output
    r = _invoke(*args, "--retry-failed")
    assert sorted(calls) == [f"{TASK}__neural__s0", f"{TASK}__neural__s1"]

    r = _invoke(*args[:-4], "--budget-seconds", 20)
    assert r.exit_code == 2 and "use another --out" in r.output


def test_report_of_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    r = _invoke("bench", "report", tmp_path / "nope")
    assert r.exit_code == 2 and "not a benchmark run folder" in r.output


@pytest.mark.slow
def test_end_to_end_oracle_and_neural_on_one_task(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = _invoke("bench", "run", "--tasks", TASK, "--agents", "oracle,neural", "--seeds", 1,
                "--out", out, "--workers", 2, "--budget-seconds", 5, "--max-nodes", 1)
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    oracle = results["scores"]["overall"]["oracle"]["metrics"]
    neural = results["scores"]["overall"]["neural"]["metrics"]
    assert oracle["valid"]["mean"] == 1.0
    assert oracle["cf_error"]["mean"] < neural["cf_error"]["mean"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    r = _invoke("bench", "report", out)
    assert r.exit_code == 0 and "report.html" in r.output


@pytest.mark.slow
def test_end_to_end_on_a_tiny_task_from_a_tasks_dir(tmp_path: Path) -> None:
    """Real workers, real agents, a task loaded from JSON (the worker reloads it); about
    15 s on two shared cores."""
    from tiny_tasks import decay_task

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    task = decay_task()
    (tasks / f"{task.name}.json").write_text(task.to_json())
    out = tmp_path / "run"
    r = _invoke("bench", "run", "--tasks-dir", tasks, "--agents", "oracle,neural",
                "--out", out, "--workers", 2, "--budget-seconds", 5, "--max-nodes", 1)
    assert r.exit_code == 0, r.output
    assert "[2/2]" in r.output and "2 ok" in r.output
    scores = json.loads((out / "results.json").read_text())["scores"]["overall"]
    assert scores["oracle"]["metrics"]["valid"]["mean"] == 1.0
    assert scores["oracle"]["metrics"]["cf_error"] is not None
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 2
