"""``mmw bench report`` on a hostile bench folder: a result file that is a link, a FIFO,
bad JSON or of the wrong shape is left out and named in the report (never a traceback,
never a host file); a bad bench.json is one clear error."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from evals.report import write_report
from evals.runner import write_json, write_result
from mechanistic.errors import UntrustedDataError

pytestmark = pytest.mark.hostile

SECRET = "HOST-SECRET-5e0b"
MANIFEST = {"agents": ["oracle"], "seeds": [0], "budget": {"max_seconds": 5},
            "tasks": {"epi": {"domain": "epidemiology", "observed": ["cases"]}}}


def _result(seed: int) -> dict[str, Any]:
    t = [float(i) for i in range(10)]
    return {"key": f"epi__oracle__s{seed}", "task": "epi", "agent": "oracle", "seed": seed,
            "status": "ok", "reason": "", "wall_s": 1.0,
            "metrics": {"valid": True, "forecast_skill": 0.5},
            "series": {"t": t, "observed": {"cases": t}, "truth": {"cases": t},
                       "forecast": {"cases": t}, "counterfactuals": [None],
                       "windows": {"train_until": 5.0, "validate_until": 7.0}}}


def _bad(**changes: Any) -> str:
    return json.dumps({**_result(1), **changes})


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    write_json(folder / "bench.json", MANIFEST)
    write_result(folder, _result(0))
    (tmp_path / "secret.json").write_text(json.dumps({**_result(9), "reason": SECRET,
                                                      "key": SECRET}))
    return folder


def _report(folder: Path) -> str:
    done: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: done.setdefault("path", write_report(folder)),
                              daemon=True)
    thread.start()
    thread.join(60)
    assert "path" in done, "the report did not finish (blocked on a FIFO?)"
    return done["path"].read_text()


BAD_RESULTS = [  # (content of results/bad.json, what the report says about it)
    (_bad(task=["epi"]), "task must be a string"),
    (_bad(seed="1"), "seed must be an integer"),
    (_bad(status="great"), "status must be one of"),
    (_bad(metrics=[1]), "metrics must be an object"),
    (_bad(series={"t": ["a"]}), "series.t[0] must be a number or null"),
    (_bad(series={"observed": {"cases": "x"}}), "series.observed"),
    ('{"key": "a", "key": "b"}', "appears twice"),
    ("[" * 100_000, "nested deeper"),
    ("[1, 2]", "must be a result object"),
]


@pytest.mark.parametrize(("content", "message"), BAD_RESULTS,
                         ids=[m for _, m in BAD_RESULTS])
def test_a_bad_result_file_is_left_out_and_named(bench: Path, content: str,
                                                 message: str) -> None:
    (bench / "results" / "bad.json").write_text(content)
    html = _report(bench)
    assert "Result files left out" in html and message in html.replace("&#x27;", "'")
    assert "data:image/png;base64," in html  # the good result is still plotted


@pytest.mark.parametrize("attack", ["link", "passwd", "fifo", "folder"])
def test_a_result_that_is_not_a_plain_file_is_refused(bench: Path, tmp_path: Path,
                                                      attack: str) -> None:
    path = bench / "results" / "evil.json"
    if attack == "link":
        path.symlink_to(tmp_path / "secret.json")
    elif attack == "passwd":
        path.symlink_to("/etc/passwd")
    elif attack == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    html = _report(bench)
    assert SECRET not in html and "root:" not in html
    assert "evil.json is not a regular file" in html


def test_a_linked_results_folder_or_manifest_is_one_clear_error(bench: Path,
                                                                 tmp_path: Path) -> None:
    (bench / "results").rename(tmp_path / "moved")
    (bench / "results").symlink_to(tmp_path / "moved")
    with pytest.raises(ValueError, match="no job results"):
        write_report(bench)
    (bench / "results").unlink()
    (tmp_path / "moved").rename(bench / "results")
    (bench / "bench.json").write_text(json.dumps({**MANIFEST, "tasks": ["epi"]}))
    with pytest.raises(UntrustedDataError, match="tasks must be an object"):
        write_report(bench)
    (bench / "bench.json").unlink()
    (bench / "bench.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(UntrustedDataError, match="symbolic link"):
        write_report(bench)
