"""``python -m sandbox build-image|doctor``: the same as the ``mmw sandbox`` commands.

Usable before (or without) the ``mmw`` entry point, e.g. from CI setup scripts.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build-image", help="build or reuse the container runtime image")
    b.add_argument("--method", default="auto", choices=["auto", "debootstrap", "registry"])
    b.add_argument("--force", action="store_true")
    d = sub.add_parser("doctor", help="which backends answer here")
    d.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from sandbox.spec import SandboxError

    if args.cmd == "build-image":
        from sandbox.container import connect
        from sandbox.image import build_image

        try:
            tag = build_image(connect(), args.method, force=args.force,
                              log=lambda s: print(s, file=sys.stderr))
        except SandboxError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(tag)
        return 0
    from sandbox.auto import doctor

    report = doctor()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, info in report["backends"].items():
            state = "available" if info["available"] else f"unavailable: {info['reason']}"
            print(f"{name}: {state}")
        print(f"auto picks: {report['auto']}")
    return 0 if report["auto"] else 2


if __name__ == "__main__":
    sys.exit(main())
