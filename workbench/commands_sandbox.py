"""``mmw sandbox doctor|build-image`` and ``mmw check MODULE.py``.

Kept apart from ``workbench/cli.py`` so the sandbox's commands can change
with the sandbox; ``register(app)`` attaches them. Imports of the sandbox and
of mechanistic happen inside the commands: ``mmw --help`` stays quick and
importing this module has no side effects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_FAILED = 1  # the module failed, or a blocking check failed
EXIT_BAD_INPUT = 2  # missing file, no usable sandbox

BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="auto, container or local [default: $MMW_SANDBOX, else auto].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False, emoji=False)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]error:[/bold red] {escape(message)}")
    return typer.Exit(code)


def doctor(json_out: JsonOpt = False, backend: BackendOpt = None) -> None:
    """Which sandbox backends answer here, which one `auto` picks, and what each guarantees."""
    from sandbox.auto import SandboxSettings, backend_source
    from sandbox.auto import doctor as run_doctor

    try:
        settings = SandboxSettings.from_env(backend=backend)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    report = run_doctor(settings)
    report["selected_by"] = backend_source(backend)
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        raise typer.Exit(0 if report["auto"] else EXIT_BAD_INPUT)
    con = _console()
    for name, info in report["backends"].items():
        if info["available"]:
            g = info["guarantees"]
            extra = f" image {info['image']}" if info.get("image") else f" ({info.get('mode')})"
            con.print(f"[green]✓[/green] {name}:{extra}")
            con.print(f"    network: {g['network']}; filesystem: {g['filesystem']}")
            con.print(f"    memory: {g['memory']}; pids: {g['pids']}; "
                      f"process tree killed: {g['process_tree_killed']}")
            for note in g["notes"]:
                con.print(f"    note: {note}")
        else:
            con.print(f"[red]✗[/red] {name}: {info['reason']}")
    picks = "auto picks" if report["selected"] == "auto" else f"{report['selected']} is"
    state = report["auto"] or "nothing (no sandbox available)"
    if report["selected"] != "auto":
        state = "available" if report["auto"] else "not available"
    con.print(f"{picks}: [bold]{state}[/bold] (selected by {report['selected_by']})")
    if not report["auto"]:
        raise typer.Exit(EXIT_BAD_INPUT)


def build_image(
    method: Annotated[str, typer.Option(help="auto, debootstrap (offline) or registry.")] = "auto",
    force: Annotated[bool, typer.Option(help="Rebuild even if the tag exists.")] = False,
) -> None:
    """Build the container runtime image (tag = content hash); reuses it when unchanged."""
    from sandbox.container import connect
    from sandbox.image import build_image as build
    from sandbox.spec import SandboxError

    try:
        client = connect()
        tag = build(client, method, force=force, log=lambda s: _console(stderr=True).print(s))
    except SandboxError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # a failed build step: say which, no traceback
        raise _fail(f"image build failed: {type(exc).__name__}: {exc}", EXIT_FAILED) from None
    typer.echo(tag)


def check(
    module: Annotated[Path, typer.Argument(help="A DSL module (.py) declaring one Model.")],
    json_out: JsonOpt = False,
    backend: BackendOpt = None,
    timeout: Annotated[float, typer.Option(help="Wall-clock limit in seconds.")] = 20.0,
) -> None:
    """Run a module in the sandbox, then the model's structural checks."""
    from mechanistic.untrusted import read_regular_file
    from sandbox.auto import SandboxSettings, backend_source, describe, open_sandbox
    from sandbox.runner import run_model_module
    from sandbox.spec import Limits, SandboxError

    if not module.exists():
        raise _fail(f"no such file: {module}")
    try:
        # a regular file of bounded size (a FIFO is an error, not a hang)
        source = read_regular_file(module, f"module {module}", 1024 * 1024).decode(
            "utf-8", "replace")
        limits = Limits(wall_s=timeout, cpu_s=max(1, int(timeout)))
        sb = open_sandbox(SandboxSettings.from_env(backend=backend))
    except (SandboxError, ValueError) as exc:
        raise _fail(str(exc)) from None
    used = f"{describe(sb)}, selected by {backend_source(backend)}"
    try:
        result = run_model_module(source, filename=module.name,
                                  sandbox=sb, limits=limits)
    finally:
        sb.close()
    checks: list[dict[str, Any]] = []
    check_error = None
    if result.ok and result.model_json is not None:
        checks, check_error = _structural_checks(result.model_json)
    blocking = [c for c in checks if not c["passed"] and c.get("severity", "error") == "error"]
    ok = result.ok and check_error is None and not blocking
    if json_out:
        out = {"module": str(module), "ok": ok, "backend": result.run.backend, "sandbox": used,
               "guarantees": result.run.guarantees.to_dict(), "ran": result.ok,
               "error": result.error.to_dict() if result.error else None,
               "check_error": check_error, "checks": checks,
               "stdout": result.stdout, "stderr": result.stderr,
               "wall_s": result.run.wall_s}
        typer.echo(json.dumps(out, indent=2))
        raise typer.Exit(0 if ok else EXIT_FAILED)
    _console().print(f"sandbox: {used}", markup=False)
    _print_check(result, checks, check_error, module)
    raise typer.Exit(0 if ok else EXIT_FAILED)


def _structural_checks(model_json: str) -> tuple[list[dict[str, Any]], str | None]:
    """Rebuild the model from JSON (no eval) and run mechanistic's checks, bounded."""
    from mechanistic.checks import run_checks_bounded
    from mechanistic.errors import ModelError, UntrustedDataError
    from mechanistic.serialize import model_from_json

    try:
        model = model_from_json(model_json)
        results = run_checks_bounded(model)
    except (ModelError, UntrustedDataError) as exc:  # the module's model is the finding
        return [], f"{type(exc).__name__}: {exc}"
    return [r.to_dict() for r in results], None


def _print_check(result: Any, checks: list[dict[str, Any]], check_error: str | None,
                 module: Path) -> None:
    from rich.markup import escape

    con = _console()
    con.print(f"{escape(str(module))}: ran in {result.run.guarantees.backend} "
              f"({result.run.wall_s:.2f}s)")
    if result.stdout.strip():
        con.print("[dim]module output:[/dim]")
        con.print(escape(result.stdout.rstrip()[-2000:]))
    if result.error is not None:
        con.print(f"[bold red]✗ module failed[/bold red] ({result.error.kind})")
        con.print(escape(result.error.render(module.name)))
        return
    if check_error:
        con.print(f"[bold red]✗ model could not be checked:[/bold red] {escape(check_error)}")
        return
    for c in checks:
        if c["passed"]:
            mark = "[green]✓[/green]"
        elif c.get("severity") == "warning":
            mark = "[yellow]![/yellow]"
        else:
            mark = "[red]✗[/red]"
        con.print(f"{mark} {escape(c['name'])}: {escape(c['message'])}")


def register(app: typer.Typer) -> None:
    """Attach ``sandbox doctor``, ``sandbox build-image`` and ``check`` to the ``mmw`` app."""
    sandbox_app = typer.Typer(name="sandbox", help="Where generated code runs: status and image.",
                              no_args_is_help=True)
    sandbox_app.command("doctor")(doctor)
    sandbox_app.command("build-image")(build_image)
    app.add_typer(sandbox_app, name="sandbox")
    app.command("check")(check)
