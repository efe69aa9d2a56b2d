"""Backend selection from settings and the environment."""

from __future__ import annotations

import pytest

from sandbox.auto import SandboxSettings, open_sandbox
from sandbox.spec import RunSpec


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("MMW_SANDBOX", "local")
    monkeypatch.setenv("MMW_SANDBOX_WARM", "1")
    s = SandboxSettings.from_env()
    assert s.backend == "local" and s.warm and not s.allow_unisolated
    assert SandboxSettings.from_env(backend="container").backend == "container"
    with pytest.raises(ValueError):
        SandboxSettings(backend="docker")


def test_open_local_warm(local_sandbox):
    sb = open_sandbox(SandboxSettings(backend="local", warm=True))
    try:
        assert sb.name == "local" and getattr(sb, "warm", False)
        r = sb.run(RunSpec(argv=("python3", "-c", "print('w')")))
        assert r.ok and r.stdout == "w\n"
    finally:
        sb.close()


def test_auto_falls_back_to_local_without_engine(monkeypatch, local_sandbox):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mmw-test.sock")
    monkeypatch.setattr("sandbox.container.candidate_endpoints",
                        lambda: ["unix:///nonexistent/mmw-test.sock"])
    sb = open_sandbox(SandboxSettings(backend="auto"))
    try:
        assert sb.name == "local"
    finally:
        sb.close()
