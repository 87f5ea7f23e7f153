"""Regenerates the gRPC stubs in ``emotion_client/v1`` from ``protos/``.

    python clients/python/generate.py          # rewrite the stubs
    python clients/python/generate.py --check  # exit 1 when they are stale

The stubs are committed so that ``pip install clients/python`` needs no
grpcio-tools. protoc names imports after the proto path (``emotion.v1``);
they are rewritten to live under ``emotion_client.v1`` so the client owns a
single top-level package.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "protos"
PROTO = Path("emotion/v1/emotion.proto")
TARGET = HERE / "emotion_client" / "v1"
OUTPUTS = ("emotion_pb2.py", "emotion_pb2.pyi", "emotion_pb2_grpc.py")


def generate() -> dict[str, str]:
    """Runs protoc and returns {file name: text} of the rewritten stubs."""
    from grpc_tools import protoc  # dev dependency only

    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as out:
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                str(PROTO_ROOT / PROTO),
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        produced = Path(out) / PROTO.parent
        return {
            name: (produced / name)
            .read_text()
            .replace("from emotion.v1 import", "from emotion_client.v1 import")
            for name in OUTPUTS
        }


def stale_files(generated: dict[str, str]) -> list[str]:
    """Names of the committed stubs that differ from ``generated``."""
    return [
        name
        for name, text in generated.items()
        if not (TARGET / name).exists() or (TARGET / name).read_text() != text
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale stubs (exit 1)")
    args = parser.parse_args()
    generated = generate()
    stale = stale_files(generated)
    if args.check:
        for name in stale:
            current = (TARGET / name).read_text().splitlines() if (TARGET / name).exists() else []
            sys.stdout.writelines(
                line + "\n" for line in difflib.unified_diff(current, generated[name].splitlines(), name, name, n=1)
            )
        if stale:
            print(f"stale stubs: {', '.join(stale)}; run `make proto`", file=sys.stderr)
        return 1 if stale else 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, text in generated.items():
        (TARGET / name).write_text(text)
    print(f"wrote {', '.join(OUTPUTS)} to {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
