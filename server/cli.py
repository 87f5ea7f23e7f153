"""The ``emotion`` command: serve, and the training/report commands as they land."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Callable

from server.config import ConfigError, add_arguments, from_arguments


def _serve(args: argparse.Namespace) -> int:
    from server.app import serve
    from server.logging import configure_logging
    from server.model import ModelNotFoundError

    settings = from_arguments(args)
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except ModelNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(
        prog="emotion",
        description="Speech emotion recognition service: serve a HuBERT classifier over gRPC, train and sweep it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the gRPC service (emotion.v1.EmotionService)",
        description=(
            "Run the gRPC service. Every flag can also be set by an EMOTION_* environment variable "
            "or a key in a TOML file (--config); flags win over the environment, which wins over the file."
        ),
    )
    add_arguments(serve)
    return parser, {"serve": _serve}


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        parser.error(str(exc))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
