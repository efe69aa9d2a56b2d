"""A module that forges the runner's result file gets a failed run, on every backend.

The runner writes its result file from inside the module's own process, so the module
can replace it with anything. Each forged file must come back as a ``ModuleRun`` that
failed with the specific reason, quickly, and the next innocent module in the same
(possibly warm) sandbox must still get its own model.
"""

from __future__ import annotations

import time

import pytest

from sandbox.runner import run_model_module

pytestmark = pytest.mark.hostile

FORGED = {
    "array": ("[1, 2]", "must hold an object"),
    "number": ("42", "must hold an object"),
    "string": ('"ok"', "must hold an object"),
    "error_list": ('{"ok": false, "error": [1]}', "'error' must be dict"),
    "frames_object": ('{"ok": false, "error": {"frames": {"a": 1}}}', "'frames' must be list"),
    "frame_abc": ('{"ok": false, "error": {"frames": [{"lineno": "abc"}]}}',
                  "'lineno' must be int"),
    "frame_negative": ('{"ok": false, "error": {"frames": [{"lineno": -5}]}}',
                       "not a line number"),
    "kind_unknown": ('{"ok": false, "error": {"kind": "ok"}}', "unknown error kind"),
    "model_json_number": ('{"ok": true, "model_json": 5}', "'model_json' must be str"),
    "variable_code": ('{"ok": true, "model_json": "{}", "variable": "m; import os"}',
                      "not a name"),
    "deep": ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    "duplicate": ('{"ok": false, "ok": true, "model_json": "{}"}', "appears twice"),
    "huge_int": ('{"ok": false, "error": {"frames": [{"lineno": 1' + "0" * 500 + "}]}}",
                 "digits"),
    "not_json": ("{'ok': True}", "not valid JSON"),
}


def forging(result: str) -> str:
    return ("import os, sys\nwith open(sys.argv[2], 'w') as f:\n"
            f"    f.write({result!r})\nos._exit(0)\n")


@pytest.mark.parametrize("name", sorted(FORGED))
def test_a_forged_result_file_is_a_failed_run(any_sandbox, seir_source, name):
    result, reason = FORGED[name]
    start = time.monotonic()
    run = run_model_module(forging(result), sandbox=any_sandbox)
    assert time.monotonic() - start < 30
    assert not run.ok and run.error is not None
    assert run.error.type == "UnreadableResult" and reason in run.error.message, run.error
    after = run_model_module(seir_source, sandbox=any_sandbox)  # the sandbox still serves
    assert after.ok and after.model_json is not None and '"SEIR"' in after.model_json
