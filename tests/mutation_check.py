"""`make mutation-check`: every promise's test must fail when its guard is broken.

Reads the declared mutations in ``tests/mutations.toml`` (one per row of ``docs/guarantees.md``),
copies the tree once to a scratch folder, and for each mutation: replaces one exact snippet of
one file there, runs only the tests named for it, and restores the file. A mutation is *caught*
when those tests fail; it *survives* when they pass, which means the promise is not tested.

Why a declared list and not mutmut or cosmic-ray: those tools mutate every operator of every
line and need hours on two cores for a tree this size, and most of their mutants are
equivalent or uninteresting. Each mutation here is a plausible bug chosen for one promise, runs
in seconds against the tests named for it, and documents which test holds the promise.

    python tests/mutation_check.py                 # all of them
    python tests/mutation_check.py --only NAME ... # some
    python tests/mutation_check.py --list          # names and promises, nothing run
    python tests/mutation_check.py --baseline      # first check that the named tests pass unmutated

Prints one line per mutation and, last, ``mutations: N, caught: N, survived: N``; exits 1 when
any survives or a mutation no longer applies (its snippet is not found exactly once).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "tests" / "mutations.toml"
# The package's import root maps these top-level folders onto emotion_service.* (pyproject.toml).
PACKAGE_FOLDERS = ("server", "plugins", "tuning")
# The other distributions installed in editable mode from this tree: their copies go first too.
IMPORT_ROOTS = (".", "clients/python", "plugins/examples/emotion-csv-export")
SKIPPED = {".venv", ".git", "build", "runs", "dist", ".pytest_cache", "emotion-reports", "emotion-csv"}


@dataclass(frozen=True)
class Mutation:
    name: str
    promise: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    timeout_s: float = 300.0


def load_table(path: Path = TABLE) -> list[Mutation]:
    """The declared mutations; raises ValueError naming the entry that is malformed."""
    rows = tomllib.loads(path.read_text())["mutation"]
    mutations, names = [], set()
    for i, row in enumerate(rows):
        missing = {"name", "promise", "file", "find", "replace", "tests"} - row.keys()
        if missing:
            raise ValueError(f"{path.name} entry {i} ({row.get('name', '?')}) lacks {sorted(missing)}")
        if row["name"] in names:
            raise ValueError(f"{path.name}: mutation name {row['name']!r} is used twice")
        if row["find"] == row["replace"]:
            raise ValueError(f"{path.name}: mutation {row['name']!r} changes nothing")
        names.add(row["name"])
        mutations.append(Mutation(**{**row, "tests": tuple(row["tests"])}))
    return mutations


def scratch_copy(destination: Path) -> None:
    """The working tree (without build outputs and the venv), importable as ``emotion_service``.

    ``emotion_service/server`` etc. are links to the copied top-level folders, so that with the
    scratch folder first on PYTHONPATH every ``emotion_service.*`` import, in tests and in the
    servers and Ray workers they start, reads the mutated copy and not the editable install.
    """
    shutil.copytree(
        ROOT,
        destination,
        ignore=lambda folder, names: [n for n in names if n in SKIPPED or n == "__pycache__" or n.endswith(".db")],
        symlinks=True,
    )
    for folder in PACKAGE_FOLDERS:
        link = destination / "emotion_service" / folder
        if not link.exists():
            link.symlink_to(Path("..") / folder, target_is_directory=True)


def apply(root: Path, mutation: Mutation) -> str:
    """Applies the mutation in ``root``; returns the file's original text."""
    path = root / mutation.file
    original = path.read_text()
    count = original.count(mutation.find)
    if count != 1:
        raise LookupError(f"its snippet occurs {count} times in {mutation.file} (must be exactly once): update it")
    path.write_text(original.replace(mutation.find, mutation.replace))
    _forget_bytecode(path)
    return original


def restore(root: Path, mutation: Mutation, original: str) -> None:
    path = root / mutation.file
    path.write_text(original)
    _forget_bytecode(path)


def _forget_bytecode(path: Path) -> None:
    # A .pyc is trusted by source mtime (whole seconds) and size: a same-size edit within the
    # second would run the cached code, so the cached file goes.
    for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        cached.unlink()


def run_tests(root: Path, mutation: Mutation) -> tuple[bool, float, str]:
    """Runs the mutation's tests in ``root``; returns (passed, seconds, last lines of output)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    roots = [str((root / folder).resolve()) for folder in IMPORT_ROOTS]
    env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *mutation.tests]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=mutation.timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - start, "timed out (counted as caught: the tests did not pass)"
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
    # Only failing tests (exit 1) catch a mutation: a collection or import error, a usage error or
    # no test collected means the mutation (or the table) is broken, not that a test held.
    if proc.returncode not in (0, 1):
        raise LookupError(f"pytest exit {proc.returncode} (not a test failure): {tail}")
    return proc.returncode == 0, time.monotonic() - start, tail


def check(mutation: Mutation, workspace: Path) -> tuple[str, str]:
    """(verdict, detail) for one mutation, in its own scratch copy."""
    original = apply(workspace, mutation)
    try:
        passed, seconds, tail = run_tests(workspace, mutation)
    finally:
        restore(workspace, mutation, original)
    return ("SURVIVED" if passed else "caught"), f"{seconds:5.1f} s" + (f"\n    {tail}" if passed else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations (names in the table)")
    parser.add_argument("--list", action="store_true", help="print the mutations and their promises; run nothing")
    parser.add_argument("--jobs", type=int, default=2, help="mutations checked at once, each in its own copy (2)")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first run every named test unmutated in the scratch copy, and stop if one fails (a catch would mean nothing)",
    )
    args = parser.parse_args(argv)
    mutations = load_table()
    if args.only:
        unknown = set(args.only) - {m.name for m in mutations}
        if unknown:
            parser.error(f"--only: no mutation named {', '.join(sorted(unknown))} in {TABLE.name}")
        mutations = [m for m in mutations if m.name in args.only]
    if args.list:
        for m in mutations:
            print(f"{m.name:45} {m.promise}")
        return 0
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="emotion-mutants-") as scratch:
        workspaces = []
        for i in range(min(args.jobs, len(mutations))):
            workspace = Path(scratch) / f"tree-{i}"
            scratch_copy(workspace)
            workspaces.append(workspace)
        free = list(workspaces)
        caught, survived, broken = 0, 0, 0
        if args.baseline:
            names = tuple(dict.fromkeys(test for m in mutations for test in m.tests))
            unmutated = Mutation("baseline", "every named test passes unmutated", "", "", "-", names, 1800.0)
            passed, seconds, tail = run_tests(workspaces[0], unmutated)
            print(f"{'baseline':8} {len(names)} named tests unmutated: {'pass' if passed else 'FAIL'} in {seconds:.0f} s")
            if not passed:
                print(f"    {tail}")
                return 2

        def one(mutation: Mutation) -> tuple[Mutation, str, str]:
            workspace = free.pop()
            try:
                return (mutation, *check(mutation, workspace))
            except LookupError as exc:
                return mutation, "STALE", str(exc)
            finally:
                free.append(workspace)

        with ThreadPoolExecutor(max_workers=len(workspaces)) as pool:
            for mutation, verdict, detail in pool.map(one, mutations):
                caught += verdict == "caught"
                survived += verdict == "SURVIVED"
                broken += verdict == "STALE"
                print(f"{verdict:8} {mutation.name:45} {detail}", flush=True)
    print(f"mutations: {len(mutations)}, caught: {caught}, survived: {survived}" + (f", stale: {broken}" if broken else ""))
    return 0 if survived == 0 and broken == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
