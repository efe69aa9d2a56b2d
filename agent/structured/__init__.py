"""The structured channel of the LLM proposer: a model specification as JSON under a JSON
Schema, validated on the host and rendered into a model-language module.

``schema`` holds the schemas, ``exprtext`` the expression reader (parsed, never
evaluated), ``spec`` the validation with field paths and the rendering, ``proposer`` the
proposer that asks for specifications. Importing this package imports none of them.
"""
