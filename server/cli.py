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
    except ConfigError as exc:  # found while starting, e.g. an unreadable certificate
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _token(args: argparse.Namespace) -> int:
    from server.auth import SCOPES, hash_token, new_token

    if args.token_command == "hash":
        print(hash_token(args.token))
        return 0
    unknown = sorted(set(args.scopes) - set(SCOPES))
    if unknown:
        print(f"error: --scopes: unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}", file=sys.stderr)
        return 2
    token = new_token()
    print(f"# token for {args.name} (give it to the client; it is not stored anywhere):\n# {token}")
    print(f'[[keys]]\nname = "{args.name}"\nsha256 = "{hash_token(token)}"\nscopes = {list(args.scopes)!r}'.replace("'", '"'))
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

    token = commands.add_parser(
        "token",
        help="make API keys for token auth",
        description="Make API keys for --auth-tokens-file. Only the SHA-256 of a token goes into the file.",
    )
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    new = token_commands.add_parser("new", help="print a new random token and its [[keys]] entry")
    new.add_argument("--name", required=True, help="client name, shown in logs (never the token)")
    new.add_argument("--scopes", nargs="+", default=["classify"], help="classify and/or admin (default: classify)")
    hashed = token_commands.add_parser("hash", help="print the SHA-256 of an existing token")
    hashed.add_argument("token", help="the token to hash")
    return parser, {"serve": _serve, "token": _token}


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
