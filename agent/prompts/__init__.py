"""Versioned prompt templates (``v1/*.md``), loaded with importlib.resources.

Templates are data, not code: a new prompt version is a new folder, so a run records
which version wrote its candidates and old runs stay reproducible.
"""
