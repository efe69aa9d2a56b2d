"""Review what the agent built: a self-contained HTML report and a local web app.

``report.write_report(run, out)`` writes one HTML file; ``app.make_server(runs_dir)``
serves the same views with approve / reject per candidate, saved to ``RUN/review.json``.
Nothing is imported here eagerly: the CLI imports what a command needs.
"""
