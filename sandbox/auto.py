"""Choosing a backend (``auto``, ``container``, ``local``, or a registered one) and
reporting what answers here.

Backends live in one registry (:func:`register_backend`): a name, how to open one from
:class:`SandboxSettings`, what ``doctor`` says about it, and its place in ``auto``'s
order. ``auto`` prefers a container when an engine answers *and* the current image is
built (a container running a stale ``mechanistic`` would report the wrong model), then
the local backend. ``doctor`` explains each decision so a person can fix the weaker case.
A backend from outside mmw registers through a plugin (:mod:`mechanistic.plugins`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.spec import Sandbox, SandboxError


@dataclass(frozen=True)
class Backend:
    """One sandbox backend. ``open`` raises SandboxError when it cannot run here;
    ``details(sb)`` and ``missing(settings)`` add what ``doctor`` reports when it can and
    when it cannot; ``auto_rank`` orders ``auto``'s tries (None: only when named)."""

    open: Callable[[SandboxSettings], Sandbox]
    details: Callable[[Sandbox], dict[str, Any]] = field(
        default=lambda sb: {"guarantees": sb.guarantees().to_dict()})
    missing: Callable[[SandboxSettings], dict[str, Any]] = field(default=lambda s: {})
    auto_rank: int | None = None


_REGISTRY: dict[str, Backend] = {}


def register_backend(name: str, backend: Backend, *, replace: bool = False) -> None:
    """Make ``backend`` available as ``--backend name`` / ``MMW_SANDBOX=name``."""
    if not name or name == "auto" or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a backend name is letters, digits, '-' and '_' (not 'auto'), "
                         f"got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a sandbox backend called {name!r} is already registered")
    _REGISTRY[name] = backend


def backend_names() -> tuple[str, ...]:
    """``auto`` and every registered backend (plugins' included)."""
    from mechanistic.plugins import load_plugins

    load_plugins()
    return ("auto", *_REGISTRY)


def _auto_order() -> list[str]:
    ranked = [(b.auto_rank, n) for n, b in _REGISTRY.items() if b.auto_rank is not None]
    return [n for _, n in sorted(ranked)]


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
        names = backend_names()
        if self.backend not in names:
            raise ValueError(f"backend must be one of {', '.join(names)}, got "
                             f"{self.backend!r}")

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


def _container_details(sb: Sandbox) -> dict[str, Any]:
    return {"image": getattr(sb, "image", None),
            "endpoint": sb.client.api.base_url,  # type: ignore[attr-defined]
            "guarantees": sb.guarantees().to_dict()}


def _container_missing(settings: SandboxSettings) -> dict[str, Any]:
    from sandbox import image as image_mod
    from sandbox.container import candidate_endpoints

    return {"endpoints_tried": candidate_endpoints(), "expected_image": image_mod.image_tag()}


def _local(settings: SandboxSettings) -> Sandbox:
    from sandbox.local import LocalConfig, LocalSandbox

    return LocalSandbox(LocalConfig(allow_unisolated=settings.allow_unisolated,
                                    warm=settings.warm or settings.prestart,
                                    single_use=settings.prestart and not settings.warm))


register_backend("container", Backend(_container, _container_details, _container_missing,
                                      auto_rank=0))
register_backend("local", Backend(_local, lambda sb: {
    "mode": getattr(sb, "mode", None), "guarantees": sb.guarantees().to_dict()}, auto_rank=1))


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
    if settings.backend != "auto":
        return _REGISTRY[settings.backend].open(settings)
    reasons = []
    for name in _auto_order():
        try:
            return _REGISTRY[name].open(settings)
        except SandboxError as exc:
            reasons.append(f"{name}: {exc}")
    raise SandboxError("no sandbox backend answers here: " + "; ".join(reasons))


def doctor(settings: SandboxSettings | None = None) -> dict[str, Any]:
    """Which backends answer here, which one ``auto`` picks, and what each guarantees."""
    settings = settings or SandboxSettings.from_env()
    report: dict[str, Any] = {"backends": {}, "auto": None}
    for name, backend in _REGISTRY.items():
        try:
            sb = backend.open(settings)
        except SandboxError as exc:
            report["backends"][name] = {"available": False, "reason": str(exc),
                                        **backend.missing(settings)}
            continue
        try:
            report["backends"][name] = {"available": True, **backend.details(sb)}
        finally:
            sb.close()
    if settings.backend != "auto":
        report["auto"] = settings.backend if report["backends"][settings.backend][
            "available"] else None
    else:
        report["auto"] = next((n for n in _auto_order()
                               if report["backends"][n]["available"]), None)
    report["selected"] = settings.backend
    return report
