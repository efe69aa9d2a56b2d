"""Hostile input files and intervention values: each is one clear error, within a time bound.

A CSV, an interventions file or an intervention dict (from a file, an LLM's answer or a
task) is untrusted. Before these tests a CSV of 10**6 columns kept ``load_csv`` busy for
minutes, a FIFO hung it, and an intervention whose kind is a list raised ``TypeError``; a
value of 10**400 raised ``OverflowError``. Each case below asserts the error's type, the
words that tell the user what is wrong and what to do, and that it came quickly.

Peak memory of ``mmw fit`` on a CSV at the default row limit (10,000 rows), measured by
hand (figures in CsvLimits' docstring) and by the slow test in
tests/workbench/test_hostile_cli.py: 2.4 GB for a one-state model with mmw fit's defaults,
4.1 GB for one fitting pass of SEIR.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mechanistic.data import CSV_LIMIT_VARIABLES, CsvLimits, load_csv
from mechanistic.errors import DataError, ModelError, UntrustedDataError
from mechanistic.interventions import (
    MAX_DOSE_TIMES,
    MAX_INTERVENTIONS,
    ControlSchedule,
    interventions_from_json,
    load_interventions,
)

pytestmark = pytest.mark.hostile


def quickly(call: Callable[[], Any], seconds: float) -> BaseException:
    """Run ``call`` in a daemon thread; it must raise within ``seconds`` (a hang fails the
    test instead of hanging the suite). Returns the exception it raised."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test to assert on
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.perf_counter()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    assert outcome and outcome[0] is not None, "no error raised"
    assert time.perf_counter() - started < seconds
    return outcome[0]


def csv_error(path: Path, seconds: float = 5.0, **kwargs: Any) -> str:
    exc = quickly(lambda: load_csv(path, **kwargs), seconds)
    assert isinstance(exc, DataError), repr(exc)
    return str(exc)


# ------------------------------------------------------------------------------ CSV size
def test_a_million_columns_is_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("t," + ",".join(f"c{i}" for i in range(10**6)) + "\n0,"
                    + ",".join("1" for _ in range(10**6)) + "\n")
    message = csv_error(path, seconds=10)
    assert "1000001 columns" in message and "256" in message
    assert "MMW_CSV_MAX_COLUMNS" in message


def test_rows_past_the_limit_are_refused_without_reading_them_all(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    rows = 10**6  # a hundred times the default limit: pandas reads 10,001, then stops
    path.write_text("t,y\n" + "".join(f"{i},1\n" for i in range(rows)))
    message = csv_error(path, seconds=10)
    assert "more than 10000 data rows" in message and "MMW_CSV_MAX_ROWS" in message


def test_a_sparse_ten_gigabyte_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.truncate(10 * 1024**3)  # sparse: nothing written, nothing read
    message = csv_error(path, seconds=5)
    assert "10737418240 bytes" in message and "MMW_CSV_MAX_BYTES" in message


@pytest.mark.parametrize(("variable", "body", "found"), [
    ("MMW_CSV_MAX_ROWS", "t,y\n" + "".join(f"{i},1\n" for i in range(11)), "more than 10"),
    ("MMW_CSV_MAX_COLUMNS", "t,a,b,c,d,e,f,g,h,i,j\n" + "0," * 10 + "0\n", "11 columns"),
    ("MMW_CSV_MAX_BYTES", "t,y\n" + "".join(f"{i},1\n" for i in range(100)), "bytes"),
])
def test_each_limit_is_set_by_its_environment_variable(tmp_path: Path, monkeypatch,
                                                       variable: str, body: str,
                                                       found: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(body)
    load_csv(path)  # within the defaults
    monkeypatch.setenv(variable, "10")
    message = csv_error(path, seconds=5)
    assert found in message and "limit of 10" in message and variable in message


def test_limits_come_from_one_place_and_a_bad_setting_is_named(monkeypatch) -> None:
    assert CsvLimits() == CsvLimits.from_env({})
    assert CsvLimits.from_env({"MMW_CSV_MAX_ROWS": "1_000_000"}).max_rows == 10**6
    assert set(CSV_LIMIT_VARIABLES.values()) == {"MMW_CSV_MAX_ROWS", "MMW_CSV_MAX_COLUMNS",
                                                 "MMW_CSV_MAX_BYTES"}
    for bad in ("lots", "-5", "0", "1e6", "9" * 400):
        with pytest.raises(DataError, match=r"MMW_CSV_MAX_COLUMNS=.*whole number >= 1"):
            CsvLimits.from_env({"MMW_CSV_MAX_COLUMNS": bad})
    with pytest.raises(ValueError, match="max_rows"):
        CsvLimits(max_rows=0)
    with pytest.raises(AttributeError):
        CsvLimits().max_rows = 5  # type: ignore[misc]  # frozen


def test_an_explicit_limits_argument_overrides_the_environment(tmp_path: Path,
                                                               monkeypatch) -> None:
    path = tmp_path / "data.csv"
    path.write_text("t,y\n0,1\n1,2\n2,3\n")
    monkeypatch.setenv("MMW_CSV_MAX_ROWS", "1")
    assert len(load_csv(path, limits=CsvLimits(max_rows=3))) == 3
    assert "more than 2 data rows" in csv_error(path, limits=CsvLimits(max_rows=2))


# ------------------------------------------------------------------- not a regular file
def test_a_fifo_as_the_csv_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)  # nobody writes: opening it for reading would block forever
    message = csv_error(fifo, seconds=5)
    assert "not a regular file" in message and "plain file" in message


def test_a_directory_and_a_device_as_the_csv(tmp_path: Path) -> None:
    assert "is a directory" in csv_error(tmp_path, seconds=5)
    assert "not a regular file" in csv_error(Path("/dev/zero"), seconds=5)
    assert "no such file" in csv_error(tmp_path / "absent.csv", seconds=5)


def test_a_symlink_to_a_regular_csv_is_still_read(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("t,y\n0,1\n1,2\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert load_csv(link).columns == ["y"]


def test_bytes_that_are_not_utf8_are_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"t,caf\xe9\n0,1\n")
    message = csv_error(path, seconds=5)
    assert "not UTF-8" in message and "byte 5" in message


def test_a_utf8_byte_order_mark_and_missing_cells_still_load(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefft,y\n0,1\n1,\n2,NA\n3,x\n".encode())
    message = csv_error(path)
    assert "column 'y' row 5 holds 'x'" in message
    path.write_bytes("\ufefft,y\n0,1\n1,\n2,NA\n3, nan\n".encode())
    data = load_csv(path)
    assert data.time_name == "t" and math.isnan(data.values["y"][1])


# ------------------------------------------------------------------ intervention dicts
GOOD = {"kind": "scale", "target": "beta", "factor": 0.5, "start": 10}


@pytest.mark.parametrize(("change", "words"), [
    ({"kind": ["scale"]}, ["'kind' must be one of", "got ['scale']"]),
    ({"kind": {"scale": 1}}, ["'kind' must be one of", "got {'scale': 1}"]),
    ({"kind": None}, ["'kind' must be one of", "got None"]),
    ({"kind": 3}, ["'kind' must be one of"]),
    ({"kind": "Scale"}, ["'kind' must be one of"]),
    ({"colour": "red"}, ["unknown ['colour']", "fields are"]),
    ({"factor": math.nan}, ["'factor' must be finite"]),
    ({"factor": math.inf}, ["'factor' must be finite"]),
    ({"factor": 10**400}, ["'factor' must be a finite number", "about 401 digits"]),
    ({"factor": "0.5"}, ["'factor' must be a number", "'0.5'"]),
    ({"factor": True}, ["'factor' must be a number"]),
    ({"start": "10"}, ["'start' must be a number"]),
    ({"start": [10]}, ["'start' must be a number"]),
    ({"start": -math.inf}, ["'start' must be finite"]),
    ({"end": "never"}, ["'end' must be a number"]),
    ({"end": 5}, ["start < end"]),
    ({"target": ["beta"]}, ["'target' must be a name"]),
    ({"target": {"x": 1}}, ["'target' must be a name"]),
    ({"target": ""}, ["'target' must be a name"]),
    ({"target": "b" * 10_000}, ["'target' must be a name", "..."]),
])
def test_a_malformed_intervention_is_one_model_error(change: dict[str, Any],
                                                     words: list[str]) -> None:
    item = {**GOOD, **change}
    exc = quickly(lambda: interventions_from_json([GOOD, item]), 5)
    assert isinstance(exc, ModelError), repr(exc)
    message = str(exc)
    assert message.startswith("intervention [1]"), message
    assert len(message) < 400, message  # a bad value is named, not copied
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(("times", "words"), [
    ("0, 12", ["'times' must be a list of numbers", "'0, 12'"]),
    ({"0": 1}, ["'times' must be a list of numbers"]),
    (None, ["'times' must be a list of numbers"]),
    (["0", 12], ["dose intervention time must be a number", "'0'"]),
    ([0, math.nan], ["dose intervention time must be finite"]),
    ([0, 10**400], ["finite number"]),
    ([], ["at least one time"]),
    (list(range(MAX_DOSE_TIMES + 1)), ["10001 dose times", "limit of 10000"]),
])
def test_dose_times_that_are_not_a_list_of_numbers(times: Any, words: list[str]) -> None:
    item = {"kind": "dose", "state": "gut", "amount": 1, "times": times}
    exc = quickly(lambda: interventions_from_json(item), 5)
    assert isinstance(exc, ModelError), repr(exc)
    for word in words:
        assert word in str(exc), (word, str(exc))


@pytest.mark.parametrize(("data", "words"), [
    ("scale beta by half", ["must be a JSON list", "'scale beta by half'"]),
    (7, ["must be a JSON list"]),
    ({"interventions": None}, ["must be a JSON list"]),
    ([GOOD, "scale"], ["intervention [1] must be an object"]),
    ([GOOD, [GOOD]], ["intervention [1] must be an object"]),
    ([GOOD] * (MAX_INTERVENTIONS + 1), ["1001 interventions", "limit of 1000"]),
    ([{1: "scale", **GOOD}], ["field names must be text"]),
])
def test_the_container_of_interventions(data: Any, words: list[str]) -> None:
    exc = quickly(lambda: interventions_from_json(data), 5)
    assert isinstance(exc, ModelError), repr(exc)
    for word in words:
        assert word in str(exc), (word, str(exc))


def test_valid_interventions_still_parse() -> None:
    items = interventions_from_json({"interventions": [
        GOOD, {"kind": "dose", "state": "gut", "amount": 100, "times": 12},
        {"kind": "transfer", "source": "L", "target": None, "rate": 0.2, "start": 5,
         "end": None}]})
    assert [i.kind for i in items] == ["scale", "dose", "transfer"]
    assert items[1].times == (12.0,) and items[2].end == math.inf


@pytest.mark.parametrize("data", [{"times": 5, "values": [1]}, {"times": [0], "values": "1"},
                                  {"times": list(range(MAX_DOSE_TIMES + 1)), "values": [1]},
                                  ["times", "values"]])
def test_a_control_schedule_of_the_wrong_shape(data: Any) -> None:
    with pytest.raises(ModelError, match="schedule must be a number or"):
        ControlSchedule.from_json(data, "feed")


# ------------------------------------------------------------------- interventions file
@pytest.mark.parametrize(("text", "words"), [
    ('[{"kind": "scale", "target": "beta", "factor": 1' + "0" * 400 + "}]",
     ["integer of 401 digits"]),
    ('[{"kind": "scale", "target": "beta", "factor": 1e400}]', ["out of range"]),
    ('[{"kind": "scale", "target": "beta", "factor": NaN}]', ["NaN is not a number JSON"]),
    ('{"kind": "scale", "kind": "set", "target": "beta", "factor": 1}', ["'kind' appears twice"]),
    ("[" * 100_000 + "]" * 100_000, ["nested deeper than the limit"]),
    ('[{"kind": "scale"', ["not valid JSON"]),
])
def test_a_hostile_interventions_file(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "what-if.json"
    path.write_text(text)
    exc = quickly(lambda: load_interventions(path), 5)
    assert isinstance(exc, UntrustedDataError), repr(exc)
    assert f"interventions file {path}" in str(exc)
    for word in words:
        assert word in str(exc), (word, str(exc))


def test_an_interventions_file_names_itself_in_a_schema_error(tmp_path: Path) -> None:
    path = tmp_path / "what-if.json"
    path.write_text('[{"kind": ["scale"]}]')
    with pytest.raises(ModelError, match=r"what-if.json: intervention \[0\]: 'kind'"):
        load_interventions(path)


def test_an_interventions_fifo_or_oversized_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert "not a regular file" in str(quickly(lambda: load_interventions(fifo), 5))
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(1024**3)
    assert "more than the limit" in str(quickly(lambda: load_interventions(big), 5))
