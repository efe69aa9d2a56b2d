"""Fixtures every test folder shares.

``sandbox``: the sandbox ``auto`` picks (a container where the image is built, else
bubblewrap), one per test module. There is always one here and in CI, so a missing one
is an error, not a skip: a skip would hide every sandboxed test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.spec import Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    from sandbox.auto import open_sandbox

    box = open_sandbox()
    yield box
    box.close()
