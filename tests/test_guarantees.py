"""docs/guarantees.md and tests/mutations.toml list the same mutations, and every test they name exists."""

from __future__ import annotations

import ast
import re

from tests.mutation_check import ROOT, load_table

GUARANTEES = ROOT / "docs" / "guarantees.md"


def _mutations_in_the_doc() -> set[str]:
    """The names in the last column of the promises table (`name`, `name`, ...)."""
    names: set[str] = set()
    for line in GUARANTEES.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 4 and not set(cells[-1]) <= {"-", " "}:
            names.update(re.findall(r"`([a-z0-9-]+)`", cells[-1]))
    return names


def test_every_mutation_has_its_row_and_every_row_its_mutation() -> None:
    table = {m.name for m in load_table()}
    documented = _mutations_in_the_doc()
    assert table - documented == set(), "mutations missing from docs/guarantees.md"
    assert documented - table == set(), "docs/guarantees.md names mutations tests/mutations.toml lacks"


def test_every_named_test_and_file_exists() -> None:
    for mutation in load_table():
        assert (ROOT / mutation.file).is_file(), f"{mutation.name}: no file {mutation.file}"
        assert mutation.find in (ROOT / mutation.file).read_text(), f"{mutation.name}: snippet not in {mutation.file}"
        for test in mutation.tests:
            path, _, name = test.partition("::")
            module = ast.parse((ROOT / path).read_text())
            functions = {node.name for node in ast.walk(module) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
            assert name.split("[")[0] in functions, f"{mutation.name}: no test {test}"


def test_at_least_25_promises_are_held_by_a_mutation() -> None:
    assert len(load_table()) >= 25
