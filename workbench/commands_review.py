"""``mmw review``: look at what the agent built before trusting it.

``mmw review RUN --html OUT.html`` writes one self-contained report; ``mmw review --serve
[RUNS_DIR]`` serves the same views locally with approve / reject per candidate, recorded
in each run's ``review.json`` (the SGNN step uses the approved candidates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register", "review_command"]


def review_command(
    path: Annotated[Path | None, typer.Argument(
        help="Run folder (with --html), or folder of runs (with --serve).")] = None,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write the run as one self-contained HTML file "
                       "(default RUN/report.html).")] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Serve a local review app over a folder of runs.")] = False,
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind; keep the loopback default unless every "
                       "machine that can reach it may approve models.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port (0: any free one).")] = 8000,
) -> None:
    """Review generated simulators: an HTML report, or a local web app with
    approve / reject."""
    from workbench.cli import _console, _user_errors

    with _user_errors():
        if serve:
            if html is not None:
                raise ValueError("--html writes a report; --serve starts the app: "
                                 "choose one")
            _serve(path or Path("."), host, port, _console)
            return
        if path is None:
            raise ValueError("give the run folder: mmw review RUN --html OUT.html "
                             "(or mmw review --serve RUNS_DIR)")
        from workbench.review.report import write_report

        out, unread = write_report(path, html or path / "report.html")
        _console().print(f"report: {out}", markup=False)
        if unread:  # a link, a FIFO or a file of the wrong shape: named in the report
            _console(stderr=True).print(
                f"note: {unread} file(s) of {path} could not be used (links, special "
                "files or wrong shapes); the report lists each with its reason",
                markup=False)


def register(app: typer.Typer) -> None:
    """Add ``mmw review`` to the command line."""
    app.command("review")(review_command)


def _serve(runs_dir: Path, host: str, port: int, console_factory: object) -> None:
    from workbench.review.app import make_server
    from workbench.review.runs import find_runs

    if not runs_dir.is_dir():
        raise ValueError(f"{runs_dir} is not a folder")
    server = make_server(runs_dir, host, port)
    console = console_factory(stderr=True)  # type: ignore[operator]
    found = len(find_runs(runs_dir))
    if not server.loopback_only:
        console.print(f"warning: serving on {host}: anyone who can reach this port can "
                      f"read the runs and record decisions", markup=False)
    console.print(f"reviewing {found} run(s) in {runs_dir} at {server.url} (Ctrl-C stops)",
                  markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
