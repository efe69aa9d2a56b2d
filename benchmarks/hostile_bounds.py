"""Host time and peak memory on the worst inputs of the hostile corpus, each in a fresh process.

    python benchmarks/hostile_bounds.py --json

Each case runs in its own interpreter (so peak RSS is that case's alone) and is timed
from the host side; a baseline process that imports the same modules and does nothing
is measured in the same run, and each case is reported as its wall time and peak RSS
with the baseline's subtracted, plus the ratio. The cases are the red team's worst
(a rate ``(x+1)**100000``, 100,000 states, 300-deep nesting, a 10**5-deep result file,
10**6-column and 10**6-row CSVs) and the largest model the limits still accept, taken
through everything the host does with a candidate (rebuild, structural checks under
their bound, LaTeX, compilation). One JSON object; the machine's load average is in it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import json, resource, sys, time
sys.path.insert(0, __ROOT__)
from mechanistic.serialize import model_from_json
from mechanistic.errors import ModelError, DataError, UntrustedDataError
from mechanistic.data import load_csv
from mechanistic.untrusted import parse_json
def outcome(fn):
    try:
        fn()
        return "accepted"
    except (ModelError, DataError, UntrustedDataError) as exc:
        return "refused: " + str(exc)[:160]
"""

BASE_DOC = """
def doc(rate, states=None):
    d = {"format": "mmw.model/1", "name": "h", "states": states or [{"name": "x"}],
         "params": [{"name": "k", "prior": {"kind": "uniform", "low": 0, "high": 1}}],
         "flows": [{"name": "loss", "source": "x", "target": None, "rate": rate}],
         "init": {"x": {"int": 1}},
         "observables": [{"name": "y", "expr": {"sym": "x"},
                          "noise": {"kind": "gaussian", "sigma": {"float": 1.0}}}]}
    return json.dumps(d)
"""

CASES: dict[str, str] = {
    "baseline": "result = 'nothing'",
    "model_pow_100000": BASE_DOC + """
x1 = {"op": "add", "args": [{"sym": "x"}, {"int": 1}]}
result = outcome(lambda: model_from_json(doc({"op": "pow", "args": [x1, {"int": 100000}]})))
""",
    "model_states_100000": BASE_DOC + """
result = outcome(lambda: model_from_json(doc({"sym": "x"},
                 [{"name": f"s{i}"} for i in range(100000)])))
""",
    "model_nested_300": BASE_DOC + """
node = {"sym": "x"}
for _ in range(300):
    node = {"op": "exp", "args": [node]}
result = outcome(lambda: model_from_json(doc(node)))
""",
    "result_file_deep_1e5": """
result = outcome(lambda: parse_json("[" * 100000 + "]" * 100000, "a result file"))
""",
    "csv_1e6_columns": """
result = outcome(lambda: load_csv(__COLUMNS__))
""",
    "csv_1e6_rows": """
result = outcome(lambda: load_csv(__ROWS__))
""",
    "largest_accepted_model": """
import sympy as sp
from mechanistic import Model, Uniform
from mechanistic.bounded import call_bounded
from mechanistic.checks import run_checks
from mechanistic.review import equations_latex
from mechanistic.simulate import compile_model
m = Model("largest")
xs = [m.state(f"x{i}") for i in range(100)]
ks = [m.param(f"k{i}", Uniform(0, 1)) for i in range(1500)]
for f in range(100):
    terms = [ks[(f * 7 + j) % 1500] * xs[j % 100] * xs[(j + f) % 100] / (1 + xs[(j * 3) % 100])
             for j in range(40)]
    m.flow(xs[f], xs[(f + 1) % 100], sp.Add(*terms, evaluate=False), name=f"f{f}")
m.init(x0=1.0)
m.observe("y", xs[0])
text = m.to_json()
def host_work():
    model = model_from_json(text)
    call_bounded(lambda: [c.to_dict() for c in run_checks(model)], "checks")
    equations_latex(model)
    compile_model(model)
result = outcome(host_work) + f" ({len(text)} bytes of model JSON)"
""",
}

EPILOGUE = """
usage = resource.getrusage
print(json.dumps({"result": result, "peak_mb": usage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "child_peak_mb": usage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _write_csvs(folder: Path) -> dict[str, str]:
    columns = folder / "wide.csv"
    with columns.open("w") as f:
        f.write("t," + ",".join(f"c{i}" for i in range(1_000_000)) + "\n")
        f.write("0," + ",".join("1" for _ in range(1_000_000)) + "\n")
    rows = folder / "long.csv"
    with rows.open("w") as f:
        f.write("t,y\n")
        f.writelines(f"{i},{i % 7}\n" for i in range(1_000_000))
    return {"columns": str(columns), "rows": str(rows)}


def _run(code: str, timeout: float) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"wall_s": wall, "error": proc.stderr[-400:]}
    return {"wall_s": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (median reported)")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_csvs(Path(tmp))
        out: dict[str, dict] = {}
        for name, body in CASES.items():
            code = (PRELUDE + body + EPILOGUE).replace("__ROOT__", repr(str(ROOT)))
            code = code.replace("__COLUMNS__", repr(paths["columns"]))
            code = code.replace("__ROWS__", repr(paths["rows"]))
            runs = [_run(code, args.timeout) for _ in range(args.repeat)]
            ok = [r for r in runs if "error" not in r]
            if not ok:
                out[name] = {"error": runs[0]["error"]}
                continue
            out[name] = {"result": ok[0]["result"],
                         "wall_s": statistics.median(r["wall_s"] for r in ok),
                         "peak_mb": statistics.median(r["peak_mb"] for r in ok),
                         "child_peak_mb": max(r["child_peak_mb"] for r in ok)}
    base = out["baseline"]
    for name, row in out.items():
        if name != "baseline" and "wall_s" in row:
            row["extra_wall_s"] = round(row["wall_s"] - base["wall_s"], 3)
            row["extra_peak_mb"] = round(row["peak_mb"] - base["peak_mb"], 1)
            row["wall_ratio_vs_baseline"] = round(row["wall_s"] / base["wall_s"], 2)
    worst = {k: max((r for n, r in out.items() if n != "baseline" and k in r),
                    key=lambda r: r[k])[k] for k in ("extra_wall_s", "extra_peak_mb")}
    report = {"cases": out, "worst": worst, "load_average": list(os.getloadavg()),
              "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, row in out.items():
            print(f"{name:26s} {row.get('extra_wall_s', 0):8.2f} s "
                  f"{row.get('extra_peak_mb', 0):8.1f} MB  "
                  f"{row.get('result', row.get('error', ''))[:90]}")
        print("worst", worst, "load", report["load_average"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
