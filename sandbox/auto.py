"""Choosing a backend (``auto``, ``container``, ``local``) and reporting what answers here.

``auto`` prefers a container when an engine answers *and* the current image
is built (a container running a stale ``mechanistic`` would report the wrong
model), then the local backend. ``doctor`` explains each decision so a
person can fix the weaker case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sandbox.spec import Sandbox, SandboxError

BACKENDS = ("auto", "container", "local")


@dataclass(frozen=True)
class SandboxSettings:
    """How to pick and configure a backend. ``from_env`` reads ``MMW_SANDBOX*`` variables."""

    backend: str = "auto"
    warm: bool = False  # reuse one sandbox (container or bwrap) for every run
    prestart: bool = False  # local: a fresh bwrap sandbox per run, started ahead of time
    allow_unisolated: bool = False
    image: str | None = None
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @classmethod
    def from_env(cls, **overrides: Any) -> SandboxSettings:
        """MMW_SANDBOX (backend), MMW_SANDBOX_IMAGE, MMW_SANDBOX_WARM=1,
        MMW_SANDBOX_PRESTART=1, MMW_SANDBOX_ALLOW_UNISOLATED=1; keyword overrides that are
        not None win."""
        def flag(name: str) -> bool:
            return os.environ.get(name, "").lower() in ("1", "true", "yes")

        values: dict[str, Any] = {
            "backend": os.environ.get("MMW_SANDBOX", "auto") or "auto",
            "image": os.environ.get("MMW_SANDBOX_IMAGE") or None,
            "warm": flag("MMW_SANDBOX_WARM"),
            "prestart": flag("MMW_SANDBOX_PRESTART"),
            "allow_unisolated": flag("MMW_SANDBOX_ALLOW_UNISOLATED"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _container(settings: SandboxSettings) -> Sandbox:
    from sandbox.container import ContainerConfig, ContainerSandbox

    return ContainerSandbox(ContainerConfig(base_url=settings.base_url, image=settings.image,
                                            warm=settings.warm))


def _local(settings: SandboxSettings) -> Sandbox:
    from sandbox.local import LocalConfig, LocalSandbox

    return LocalSandbox(LocalConfig(allow_unisolated=settings.allow_unisolated,
                                    warm=settings.warm or settings.prestart,
                                    single_use=settings.prestart and not settings.warm))


def backend_source(flag: str | None) -> str:
    """Where the backend choice comes from: the flag when given, else ``MMW_SANDBOX``.

    ``--backend`` wins only when it is actually given; an unset flag defers to the
    environment, so ``MMW_SANDBOX=local mmw check`` runs locally.
    """
    if flag:
        return f"--backend {flag}"
    env = os.environ.get("MMW_SANDBOX")
    return f"MMW_SANDBOX={env}" if env else "default"


def describe(sb: Sandbox) -> str:
    """One phrase for which sandbox actually runs the code: ``local (bwrap)``,
    ``local (bwrap, warm)``, ``container (mmw-sandbox:TAG, warm)``."""
    details: list[str] = []
    if getattr(sb, "mode", None):
        details.append(str(sb.mode))  # type: ignore[attr-defined]
    if getattr(sb, "image", None):
        details.append(str(sb.image))  # type: ignore[attr-defined]
    config = getattr(sb, "config", None)
    if getattr(config, "single_use", False):
        details.append("prestart")
    elif getattr(config, "warm", False):
        details.append("warm")
    return f"{sb.name} ({', '.join(details)})" if details else sb.name


def open_sandbox(settings: SandboxSettings | None = None) -> Sandbox:
    """A ready sandbox for ``settings`` (default: from the environment); SandboxError if none."""
    settings = settings or SandboxSettings.from_env()
    if settings.backend == "container":
        return _container(settings)
    if settings.backend == "local":
        return _local(settings)
    try:
        return _container(settings)
    except SandboxError:
        return _local(settings)


def doctor(settings: SandboxSettings | None = None) -> dict[str, Any]:
    """Which backends answer here, which one ``auto`` picks, and what each guarantees."""
    from sandbox import image as image_mod
    from sandbox.container import candidate_endpoints

    settings = settings or SandboxSettings.from_env()
    report: dict[str, Any] = {"backends": {}, "auto": None}
    try:
        c = _container(settings)
        report["backends"]["container"] = {
            "available": True, "image": getattr(c, "image", None),
            "endpoint": c.client.api.base_url, "guarantees": c.guarantees().to_dict()}
        c.close()
    except SandboxError as exc:
        report["backends"]["container"] = {
            "available": False, "reason": str(exc), "endpoints_tried": candidate_endpoints(),
            "expected_image": image_mod.image_tag()}
    try:
        loc = _local(settings)
        report["backends"]["local"] = {"available": True, "mode": getattr(loc, "mode", None),
                                       "guarantees": loc.guarantees().to_dict()}
    except SandboxError as exc:
        report["backends"]["local"] = {"available": False, "reason": str(exc)}
    if settings.backend != "auto":
        report["auto"] = settings.backend if report["backends"][settings.backend][
            "available"] else None
    else:
        for name in ("container", "local"):
            if report["backends"][name]["available"]:
                report["auto"] = name
                break
    report["selected"] = settings.backend
    return report
