"""Runs *inside* the sandbox: execute a DSL module, write its model as JSON.

Shipped as a file into every run's work dir (not baked into the image), so
changing it never makes the image stale. Standard library only at import;
``mechanistic`` is imported only if the module itself imported it (a module
that never imported it cannot have built a ``Model``).

It imports nothing heavy itself (no ``json``, ``re`` or ``traceback`` on the
success path: under a few ms each, but the whole sandboxed run of a small
module costs only a few tens of ms), so a trivial module pays only for the
interpreter.

Usage: ``python3 _mmw_runner.py MODULE.py RESULT.json``. The result file holds
either ``{"ok": true, "model_json": ...}`` or ``{"ok": false, "error": {...}}``
with the exception type, message and the traceback frames inside the module.
"""

import sys


def _frames(exc, filename, source_lines):
    """Traceback frames that point into the module, with their source lines."""
    import traceback

    out = []
    for fr in traceback.extract_tb(exc.__traceback__):
        if fr.filename == filename:
            line = source_lines[fr.lineno - 1] if fr.lineno and fr.lineno <= len(
                source_lines) else (fr.line or "")
            out.append({"lineno": fr.lineno, "name": fr.name, "line": line.strip()})
    return out


def _error(kind, exc_type, message, frames=(), tb=""):
    return {"ok": False, "error": {"kind": kind, "type": exc_type, "message": message,
                                   "frames": list(frames), "traceback": tb}}


def _short_tb(exc, filename):
    """The traceback without this runner's own frames (they mean nothing to the author)."""
    import traceback

    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "".join(ln for ln in lines if __file__ not in ln)[-4000:]


def run(filename):
    with open(filename, encoding="utf-8", errors="replace") as f:
        source = f.read()
    lines = source.splitlines()
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        lineno = exc.lineno or 0
        text = lines[lineno - 1] if 0 < lineno <= len(lines) else (exc.text or "")
        return _error("syntax", type(exc).__name__, exc.msg,
                      [{"lineno": lineno, "name": "<module>", "line": text.strip(),
                        "offset": exc.offset}])
    namespace = {"__name__": "__mmw_module__", "__file__": filename, "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are module failures too
        return _error("exception", type(exc).__name__, str(exc), _frames(exc, filename, lines),
                      _short_tb(exc, filename))
    mech = sys.modules.get("mechanistic")
    model_cls = getattr(mech, "Model", None) if mech else None
    found = {}
    if model_cls is not None:
        for name, value in namespace.items():
            if isinstance(value, model_cls):
                found.setdefault(id(value), []).append(name)
    if not found:
        return _error("no_model", "NoModelError",
                      "the module declares no mechanistic.Model (expected exactly one, e.g. "
                      "`m = Model(\"name\")` at module level)")
    if len(found) > 1:
        names = ", ".join(sorted(n[0] for n in found.values()))
        return _error("multiple_models", "MultipleModelsError",
                      f"the module declares {len(found)} Model instances ({names}); "
                      "declare exactly one")
    (model_id,) = found
    model = next(v for v in namespace.values() if id(v) == model_id)
    try:
        text = model.to_json()
    except BaseException as exc:
        return _error("serialization", type(exc).__name__, str(exc),
                      _frames(exc, filename, lines), _short_tb(exc, filename))
    return {"ok": True, "model_json": text, "variable": found[model_id][0]}


def main():
    filename, result_path = sys.argv[1], sys.argv[2]
    try:
        result = run(filename)
    except BaseException as exc:  # the runner itself must always leave a result
        import traceback

        result = _error("runner", type(exc).__name__, str(exc), (), traceback.format_exc())
    sys.stdout.flush()
    sys.stderr.flush()
    with open(result_path, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(_dump(result))


_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def _dump(value):
    """Minimal JSON encoder for the result's dicts, lists, strings, ints, bools and None."""
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(_dump(str(k)) + ":" + _dump(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return _dump(str(value))


if __name__ == "__main__":
    main()
