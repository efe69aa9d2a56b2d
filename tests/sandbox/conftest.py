"""Fixtures for sandbox tests: one sandbox per backend, and host-side probes.

Container fixtures skip where no engine answers, except under CI (``CI=true``)
where a missing engine or image is a failure: CI sets Podman up on purpose,
and a silent skip there would hide a broken sandbox.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from sandbox.spec import Sandbox, SandboxError


def _in_ci() -> bool:
    flags = (os.environ.get("CI", ""), os.environ.get("MMW_REQUIRE_CONTAINER", ""))
    return any(f.lower() in ("1", "true", "yes") for f in flags)


def _unavailable(what: str, why: str) -> None:
    if _in_ci():
        pytest.fail(f"{what} is required in CI but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


@pytest.fixture(scope="session")
def local_sandbox() -> Sandbox:
    from sandbox.local import LocalConfig, LocalSandbox

    try:
        return LocalSandbox(LocalConfig(mode="bwrap"))
    except SandboxError as exc:
        _unavailable("bubblewrap", str(exc))
        raise


def _opened(what: str, make: Callable[[], Sandbox]) -> Iterator[Sandbox]:
    """Open a backend for a session fixture (skip, or fail in CI, when it cannot open)."""
    try:
        sb = make()
    except SandboxError as exc:
        _unavailable(what, str(exc))
        raise
    yield sb
    sb.close()


@pytest.fixture(scope="session")
def local_warm() -> Iterator[Sandbox]:
    from sandbox.local import LocalConfig, LocalSandbox

    yield from _opened("bubblewrap", lambda: LocalSandbox(LocalConfig(mode="bwrap", warm=True)))


@pytest.fixture(scope="session")
def local_prestart() -> Iterator[Sandbox]:
    from sandbox.local import LocalConfig, LocalSandbox

    yield from _opened("bubblewrap", lambda: LocalSandbox(
        LocalConfig(mode="bwrap", warm=True, single_use=True)))


@pytest.fixture(scope="session")
def container_cold() -> Iterator[Sandbox]:
    from sandbox.container import ContainerConfig, ContainerSandbox

    yield from _opened("container engine",
                       lambda: ContainerSandbox(ContainerConfig(warm=False)))


@pytest.fixture(scope="session")
def container_warm() -> Iterator[Sandbox]:
    from sandbox.container import ContainerConfig, ContainerSandbox

    yield from _opened("container engine", lambda: ContainerSandbox(ContainerConfig(warm=True)))


BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("local_warm", id="local-warm"),
    pytest.param("container_cold", id="container-cold", marks=pytest.mark.container),
    pytest.param("container_warm", id="container-warm", marks=pytest.mark.container),
]


@pytest.fixture(params=BACKENDS)
def any_sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Each backend in turn: the adversarial corpus must hold against all of them."""
    name = request.param
    return request.getfixturevalue("local_sandbox" if name == "local" else name)


SEIR_SOURCE = """\
from mechanistic import Model, LogUniform, Uniform

m = Model("SEIR", time_unit="day")
S, E, I, R = m.states("S E I R")
beta = m.param("beta", LogUniform(0.05, 3.0), doc="transmission rate")
sigma = m.param("sigma", Uniform(1/7, 1/2))
gamma = m.param("gamma", Uniform(1/14, 1/3))
N = S + E + I + R
m.flow(S, E, beta * S * I / N, name="infection")
m.flow(E, I, sigma * E)
m.flow(I, R, gamma * I)
m.init(S=1e6 - 10, E=0, I=10, R=0)
print("declared", m.name)
"""


@pytest.fixture
def seir_source() -> str:
    """A small valid DSL module; line 10 is ``m.flow(E, I, sigma * E)``."""
    return SEIR_SOURCE


@pytest.fixture
def survivors():
    """``survivors(token)``: host pids still running with ``token`` in their command line."""
    return find_survivors


def find_survivors(token: str, wait_s: float = 1.5) -> list[int]:
    """Host pids whose command line carries ``token`` (after giving kills a moment to land).

    Works for both backends: container processes share the host kernel, so
    they show up in the host's /proc too.
    """
    me = os.getpid()
    deadline = time.monotonic() + wait_s
    while True:
        found = []
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == me:
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read()
                with open(f"/proc/{p}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if token.encode() in cmd and state not in ("Z", "X"):
                found.append(int(p))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
