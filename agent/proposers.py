"""One registry for proposers: a name -> a factory taking :class:`ProposerSettings`.

``mmw model --agent NAME`` and the benchmark's search agents build their proposer here,
so both paths hand the same settings (seed, chat model, endpoint, log) to it. Adding a
proposer is one module and one :func:`register_proposer` call; nothing else changes. A
module outside mmw registers through a plugin (``MMW_PLUGINS`` or the ``mmw.plugins``
entry point group, :mod:`mechanistic.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agent.core import EventSink, Proposer

if TYPE_CHECKING:
    from agent.llm import ChatSettings

__all__ = ["ProposerSettings", "make_proposer", "proposer_names", "register_proposer"]


@dataclass(frozen=True)
class ProposerSettings:
    """What any proposer may need; each factory reads the fields it uses."""

    seed: int = 0
    llm: str | None = None            # provider:model, or a model name with base_url
    base_url: str | None = None       # an OpenAI-compatible endpoint
    log: EventSink | None = None
    exclude_motifs: tuple[str, ...] = ()
    api_key_env: str = "OPENAI_API_KEY"  # where a remote endpoint's key is read from
    prompt_version: str = "v1"
    chat: ChatSettings | None = None  # sampling and transport; the seed above wins
    structured: bool = False          # llm: answers are JSON specifications (agent/structured)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"ProposerSettings.seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "exclude_motifs", tuple(self.exclude_motifs))


ProposerFactory = Callable[[ProposerSettings], Proposer]


def _library(settings: ProposerSettings) -> Proposer:
    from agent.library import LibraryProposer

    return LibraryProposer(seed=settings.seed, exclude=settings.exclude_motifs)


def _discovery(settings: ProposerSettings) -> Proposer:
    from agent.discovery.proposer import DiscoveryProposer

    return DiscoveryProposer(seed=settings.seed)


def _offline(settings: ProposerSettings) -> Proposer:
    from agent.offline import OfflineProposer

    return OfflineProposer(seed=settings.seed, exclude_motifs=settings.exclude_motifs)


def _llm(settings: ProposerSettings) -> Proposer:
    from agent.llm import ChatSettings, LLMProposer

    cls = LLMProposer
    if settings.structured:
        from agent.structured.proposer import StructuredLLMProposer

        cls = StructuredLLMProposer
    chat = replace(settings.chat or ChatSettings(), seed=settings.seed)
    if settings.base_url:
        # "openai:NAME" names the protocol, not the model; other colons (Ollama's
        # "llama3:8b") belong to the model name.
        name = settings.llm.removeprefix("openai:") if settings.llm else "default"
        return cls.from_base_url(settings.base_url, name, settings.api_key_env,
                                         settings=chat, log=settings.log,
                                         prompt_version=settings.prompt_version)
    if not settings.llm:
        raise ValueError("--agent llm needs --llm provider:model (e.g. openai:gpt-4o-mini) "
                         "or --base-url URL of an OpenAI-compatible endpoint")
    return cls.from_spec(settings.llm, settings=chat, log=settings.log,
                                 prompt_version=settings.prompt_version)


_REGISTRY: dict[str, ProposerFactory] = {
    "offline": _offline, "library": _library, "discovery": _discovery, "llm": _llm,
}


def register_proposer(name: str, factory: ProposerFactory, *, replace: bool = False) -> None:
    """Make ``factory`` available as ``--agent name``; a taken name needs ``replace``."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a proposer name is letters, digits, '-' and '_', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a proposer called {name!r} is already registered")
    _REGISTRY[name] = factory


def proposer_names() -> list[str]:
    """Every registered proposer, plugins' included (see :mod:`mechanistic.plugins`)."""
    from mechanistic.plugins import load_plugins

    load_plugins()
    return list(_REGISTRY)


def make_proposer(name: str, settings: ProposerSettings | None = None) -> Proposer:
    """The proposer called ``name``; ValueError naming the choices for an unknown one."""
    proposer_names()  # plugins register on import
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"unknown agent {name!r}; choose from {', '.join(_REGISTRY)}")
    proposer = factory(settings or ProposerSettings())
    if not isinstance(proposer, Proposer):  # a plugin's factory: say what is missing
        missing = [a for a in ("name", "usage", "propose", "repair", "refine", "intervention")
                   if not hasattr(proposer, a)]
        raise ValueError(f"the {name!r} proposer ({type(proposer).__name__}) does not "
                         f"implement agent.core.Proposer: missing {', '.join(missing)}")
    return proposer
