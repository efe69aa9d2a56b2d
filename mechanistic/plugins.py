"""Plugins: modules outside mmw that register parts (proposers, bench agents, ...) on import.

Each seam keeps its own registry (``agent.proposers.register_proposer``,
``evals.agents.register_agent``); a plugin is any importable module whose import calls
those. It is named either by a packaging entry point in the group ``mmw.plugins`` (what
an installed package declares) or in the ``MMW_PLUGINS`` environment variable, a comma-
separated list of module names (what a notebook, a test or a one-off script uses).
Registries call :func:`load_plugins` before they answer, so a part registered by a
plugin is there in the command line and in the benchmark's spawned worker processes
alike (they inherit the variable and see the same entry points).

Importing a plugin runs its code: plugins are the user's own installed code, chosen by
them, never something a run folder, a model or an LLM answer can name.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from importlib import metadata

__all__ = ["ENV", "GROUP", "PluginError", "load_plugins"]

ENV = "MMW_PLUGINS"
GROUP = "mmw.plugins"
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_loaded: set[str] = set()


class PluginError(ValueError):
    """A plugin named in MMW_PLUGINS or an entry point could not be imported."""


def _named() -> list[str]:
    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    for name in names:
        if not _MODULE.fullmatch(name):
            raise PluginError(f"{ENV} names {name!r}, which is not a module name; give "
                              "comma-separated dotted module names")
    return [*names, *_entry_point_modules()]


@functools.cache
def _entry_point_modules() -> tuple[str, ...]:
    """Installed plugins, scanned once a process (the scan reads every distribution's
    metadata; registries consult the plugins on every lookup)."""
    try:
        points = metadata.entry_points(group=GROUP)
    except Exception:  # a broken distribution's metadata must not stop mmw
        points = ()
    return tuple(p.value.split(":")[0] for p in points)


def load_plugins() -> None:
    """Import every plugin not imported yet (idempotent; cheap when there are none)."""
    for name in _named():
        if name in _loaded:
            continue
        _loaded.add(name)
        try:
            importlib.import_module(name)
        except Exception as exc:
            _loaded.discard(name)
            raise PluginError(f"plugin {name!r} could not be imported: "
                              f"{type(exc).__name__}: {exc}") from exc
