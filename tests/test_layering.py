"""The one-way package dependencies of docs/architecture.md, checked on the import lines.

``mechanistic`` → ``sandbox`` → ``agent``; ``mechanistic`` → ``sgnn``; ``evals`` above
those; ``workbench`` and the ``mmw`` Python API on top; the ``benchmarks`` scripts use
everything below ``workbench``. An import inside a function counts too: a lazy import that
points up is still an arrow that points up (``evals/report.py`` once imported
``workbench.review.render`` that way).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("mechanistic", "sandbox", "agent", "sgnn", "evals", "workbench", "mmw", "benchmarks")
MAY_IMPORT = {
    "mechanistic": set(),
    "sandbox": {"mechanistic"},
    "agent": {"mechanistic", "sandbox"},
    "sgnn": {"mechanistic"},
    "evals": {"mechanistic", "sandbox", "agent", "sgnn"},
    "benchmarks": {"mechanistic", "sandbox", "agent", "sgnn", "evals"},
}


def _imported(path: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_point_down(package: str) -> None:
    allowed = MAY_IMPORT[package] | {package}
    wrong = [f"{path.relative_to(ROOT)}: {name}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for name in _imported(path)
             if name.split(".")[0] in OURS and name.split(".")[0] not in allowed]
    assert wrong == []
