"""``mmw check`` and ``mmw sandbox doctor`` through typer, on the local backend."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from workbench.commands_sandbox import register


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    register(app)
    return app


@pytest.fixture(autouse=True)
def _need_local(local_sandbox):
    """Skip where bubblewrap is missing (the fixture does that)."""


def test_check_ok_json(app, tmp_path, seir_source):
    mod = tmp_path / "seir.py"
    mod.write_text(seir_source)
    r = CliRunner().invoke(app, ["check", str(mod), "--json", "--backend", "local"])
    out = json.loads(r.stdout)
    assert out["ran"] and out["error"] is None, r.stdout
    assert {c["name"] for c in out["checks"]} >= {"conservation"}
    assert r.exit_code == (0 if out["ok"] else 1)


def test_check_reports_module_line(app, tmp_path):
    mod = tmp_path / "broken.py"
    mod.write_text("x = 1\ny = undefined\n")
    r = CliRunner().invoke(app, ["check", str(mod), "--backend", "local"])
    assert r.exit_code == 1
    assert 'File "broken.py", line 2' in r.stdout and "NameError" in r.stdout


def test_check_missing_file(app, tmp_path):
    r = CliRunner().invoke(app, ["check", str(tmp_path / "nope.py")])
    assert r.exit_code == 2


def test_doctor_json(app):
    r = CliRunner().invoke(app, ["sandbox", "doctor", "--json", "--backend", "local"])
    report = json.loads(r.stdout)
    assert report["backends"]["local"]["available"] and report["auto"] == "local"
    assert report["backends"]["local"]["guarantees"]["network"] == "none"
