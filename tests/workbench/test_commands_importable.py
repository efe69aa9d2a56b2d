"""The command groups' commands are module-level functions that ``register(app)``
attaches: a test (or another tool) imports one and calls it with plain arguments, and
gets what the command line gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from workbench import (
    commands_agent,
    commands_bench,
    commands_export,
    commands_review,
    commands_sandbox,
    commands_sgnn,
)
from workbench.cli import app


def test_bench_list_called_directly_prints_what_the_command_line_prints(
        capsys: pytest.CaptureFixture[str]) -> None:
    commands_bench.list_command(as_json=True, tasks="epi-seir-town-partial", tasks_dir=None)
    direct = json.loads(capsys.readouterr().out)
    via_cli = CliRunner().invoke(app, ["bench", "list", "--json", "--tasks",
                                       "epi-seir-town-partial"])
    assert via_cli.exit_code == 0, via_cli.output
    assert direct == json.loads(via_cli.output)
    assert [t["name"] for t in direct["tasks"]] == ["epi-seir-town-partial"]


def test_bad_input_to_a_direct_call_is_exit_status_two(tmp_path: Path) -> None:
    with pytest.raises(typer.Exit) as review:
        commands_review.review_command(path=None, html=None, serve=False)
    with pytest.raises(typer.Exit) as report:
        commands_bench.report_command(run_dir=tmp_path / "no-such-bench")
    with pytest.raises(typer.Exit) as predict:
        commands_sgnn.predict_command(run=tmp_path / "no-such-run", data=tmp_path / "d.csv")
    with pytest.raises(typer.Exit) as forecast:
        commands_agent.predict_command(run=tmp_path / "no-such-run", until=10.0)
    with pytest.raises(typer.Exit) as export:
        commands_export.export_command(source=tmp_path / "m.json", sbml=None, antimony=None,
                                       petab=None, candidate=None)
    codes = {review.value.exit_code, report.value.exit_code, predict.value.exit_code,
             forecast.value.exit_code, export.value.exit_code}
    assert codes == {2}


@pytest.mark.parametrize("group", [commands_agent, commands_bench, commands_export,
                                   commands_review, commands_sandbox, commands_sgnn])
def test_register_attaches_module_level_functions(group: object) -> None:
    sub = typer.Typer()
    group.register(sub)  # type: ignore[attr-defined]
    callbacks = [c.callback for c in sub.registered_commands]
    callbacks += [c.callback for g in sub.registered_groups
                  for c in g.typer_instance.registered_commands]
    assert callbacks
    for callback in callbacks:
        assert getattr(group, callback.__name__) is callback
        assert "<locals>" not in callback.__qualname__
