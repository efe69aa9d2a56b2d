"""Errors raised for bad user input; their messages say what is wrong and what to do."""

from __future__ import annotations

__all__ = ["DataError", "ModelError", "SerializationError", "UntrustedDataError"]


class ModelError(ValueError):
    """A model declaration is invalid (unknown symbol, duplicate name, bad argument)."""


class SerializationError(ModelError):
    """Model JSON is malformed, uses an unknown node type or references an unknown symbol."""


class DataError(ValueError):
    """Observation data cannot be used as given (bad CSV, non-monotonic time, unknown columns)."""


class UntrustedDataError(ValueError):
    """Data from outside the host's own code (a sandbox result, a run-folder file, an LLM
    answer) breaks a limit or a schema: too deep, too large, a duplicate key, a link out of
    its folder. The message names what was read and the limit it broke."""
