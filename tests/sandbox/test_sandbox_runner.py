"""The module runner: a model comes back as JSON; failures come back with module line numbers."""

from __future__ import annotations

import pytest

from mechanistic import model_from_json
from sandbox.runner import ModuleError, run_model_module
from sandbox.spec import Limits

RUNNER_BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("local_warm", id="local-warm"),
    pytest.param("local_prestart", id="local-prestart"),
    pytest.param("container_warm", id="container-warm", marks=pytest.mark.container),
]


@pytest.fixture(params=RUNNER_BACKENDS)
def sb(request):
    name = request.param
    return request.getfixturevalue("local_sandbox" if name == "local" else name)


def test_model_comes_back_as_json(sb, seir_source):
    r = run_model_module(seir_source, sandbox=sb)
    assert r.ok, r.error and r.error.render()
    assert r.error is None and r.variable == "m"
    assert "declared SEIR" in r.stdout
    model = model_from_json(r.model_json)
    assert model.name == "SEIR"


def _expect(
    r, kind: str, type_: str, lineno: int | None, line_part: str | None = None
) -> ModuleError:
    assert not r.ok and r.model_json is None
    err = r.error
    assert err is not None, r.run.summary()
    assert (err.kind, err.type) == (kind, type_), err.render()
    assert err.lineno == lineno, err.render()
    if line_part is not None:
        assert line_part in err.frames[-1].line
        assert f"line {lineno}" in err.render()
    return err


def test_syntax_error_has_module_line(sb, seir_source):
    src = "from mechanistic import Model\nm = Model('x')\nS = m.states('S'\nm.rate(S, 0)\n"
    r = run_model_module(src, sandbox=sb)
    err = _expect(r, "syntax", "SyntaxError", 3)
    assert "m.states" in err.frames[0].line


def test_name_error_has_module_line(sb, seir_source):
    src = seir_source.replace("m.flow(E, I, sigma * E)", "m.flow(E, I, sigmaa * E)")
    r = run_model_module(src, filename="seir.py", sandbox=sb)
    err = _expect(r, "exception", "NameError", 10, "sigmaa")
    assert "sigmaa" in err.message
    assert 'File "seir.py", line 10' in err.render("seir.py")


def test_dsl_misuse_points_at_the_call(sb, seir_source):
    src = seir_source.replace("m.flow(E, I, sigma * E)", "m.flow(E, 'Q', sigma * E)")
    r = run_model_module(src, sandbox=sb)
    err = _expect(r, "exception", "ModelError", 10, "m.flow(E, 'Q'")
    assert "Q" in err.message


def test_error_inside_module_function_lists_both_frames(sb, seir_source):
    src = "def helper():\n    return 1 / 0\n\nx = helper()\n"
    r = run_model_module(src, sandbox=sb)
    err = _expect(r, "exception", "ZeroDivisionError", 2, "1 / 0")
    assert [f.lineno for f in err.frames] == [4, 2]


def test_no_model_and_two_models(sb, seir_source):
    r = run_model_module("x = 1\n", sandbox=sb)
    assert r.error is not None and r.error.kind == "no_model"
    src = "from mechanistic import Model\na = Model('a')\nb = Model('b')\n"
    r = run_model_module(src, sandbox=sb)
    assert r.error is not None and r.error.kind == "multiple_models"
    assert "a, b" in r.error.message


def test_same_model_under_two_names_is_one_model(sb, seir_source):
    src = "from mechanistic import Model\nm = Model('a')\nalias = m\nm.states('S')\n"
    r = run_model_module(src, sandbox=sb)
    assert r.error is None or r.error.kind != "multiple_models"


def test_timeout_and_exit_are_structured(sb, seir_source):
    r = run_model_module("while True:\n    pass\n", sandbox=sb, limits=Limits(wall_s=1.0))
    assert r.error is not None and r.error.kind == "timeout"
    r = run_model_module("import os\nos._exit(0)\n", sandbox=sb)
    assert r.error is not None and r.error.kind == "crashed"
    r = run_model_module("import sys\nsys.exit(2)\n", sandbox=sb)
    assert r.error is not None and r.error.type == "SystemExit" and r.error.lineno == 2


def test_bad_filename_is_rejected():
    with pytest.raises(ValueError):
        run_model_module("x = 1", filename="../evil.py")
