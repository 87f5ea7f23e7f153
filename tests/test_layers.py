"""The dependency direction of docs/architecture.md, checked on every import statement.

The CLI sits on top and delegates; training may use plugins, the shared modules and the
serving backend's documented API (``emotion_service.server.model``) only; serving never
imports training or the CLI; plugins import only plugins and the shared modules; the shared
modules import none of the layers. Imports inside functions count too: they are parsed
from the source, not observed at run time.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "emotion_service"
# Folder of the checkout -> the module prefix it is installed under (pyproject's package-dir).
FOLDERS = {
    ROOT / "emotion_service": PACKAGE,
    ROOT / "server": f"{PACKAGE}.server",
    ROOT / "plugins": f"{PACKAGE}.plugins",
    ROOT / "tuning": f"{PACKAGE}.tuning",
}
LAYERS = ("server", "plugins", "tuning", "cli")
# layer -> module prefixes it must not import (a prefix matches itself and its submodules)
FORBIDDEN = {
    "server": ("tuning", "cli"),
    "plugins": ("server", "tuning", "cli"),
    "tuning": ("cli", "server"),
    "shared": ("server", "plugins", "tuning", "cli"),
}
# The documented doors from training into serving: evaluation scores through the server's backend,
# and the alert calibration replays windows at the server's own settings (its defaults).
ALLOWED = {"tuning": (f"{PACKAGE}.server.model", f"{PACKAGE}.server.config")}


def modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in FOLDERS.items():
        for path in folder.rglob("*.py"):
            if "examples" in path.parts:  # the example plugin is its own distribution
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if prefix == PACKAGE and parts[0] in LAYERS[:3]:
                continue
            name = ".".join((prefix, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def layer_of(module: str) -> str:
    rest = module.removeprefix(PACKAGE + ".")
    head = rest.split(".")[0]
    if head == "__main__":  # ``python -m emotion_service`` is the CLI
        return "cli"
    return head if head in LAYERS else "shared"


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}


def violations(sources: dict[str, Path]) -> list[str]:
    found = []
    for module, path in sorted(sources.items()):
        layer = layer_of(module)
        for target in sorted(imports_of(path, module)):
            for banned in FORBIDDEN.get(layer, ()):
                prefix = f"{PACKAGE}.{banned}"
                if (target == prefix or target.startswith(prefix + ".")) and not any(
                    target == ok or target.startswith(ok + ".") for ok in ALLOWED.get(layer, ())
                ):
                    found.append(f"{module} ({layer}) imports {target}")
    return found


def test_layers_point_one_way() -> None:
    sources = modules()
    assert f"{PACKAGE}.server.service" in sources and f"{PACKAGE}.tuning.finetune" in sources
    assert violations(sources) == []


def test_the_check_catches_serving_importing_training(tmp_path: Path) -> None:
    """The rule above would fail on a lazy import of training inside a serving function."""
    bad = tmp_path / "service.py"
    bad.write_text("def handler():\n    from emotion_service.tuning.finetune import run_training\n")
    plugin = tmp_path / "store.py"
    plugin.write_text("from ...server import service\n")
    found = violations({f"{PACKAGE}.server.service": bad, f"{PACKAGE}.plugins.builtin.store": plugin})
    assert found == [
        f"{PACKAGE}.plugins.builtin.store (plugins) imports {PACKAGE}.server",
        f"{PACKAGE}.plugins.builtin.store (plugins) imports {PACKAGE}.server.service",
        f"{PACKAGE}.server.service (server) imports {PACKAGE}.tuning.finetune",
        f"{PACKAGE}.server.service (server) imports {PACKAGE}.tuning.finetune.run_training",
    ]


def test_serving_loads_without_training_modules() -> None:
    """At run time too: starting the server's modules pulls in nothing of training."""
    code = (
        "import sys, emotion_service.server.app, emotion_service.server.service;"
        "print(sorted(m for m in sys.modules if m.startswith(('emotion_service.tuning', 'emotion_service.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_wheel_installs_one_namespaced_root(tmp_path: Path) -> None:
    build = ROOT / "build"  # setuptools builds in the source tree; leave it as found
    had_build = build.exists()
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(tmp_path),
                str(ROOT),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    finally:
        if not had_build:
            shutil.rmtree(build, ignore_errors=True)
    (wheel,) = tmp_path.glob("emotion_service-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    roots = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert roots == {PACKAGE}
    assert f"{PACKAGE}/server/service.py" in names and f"{PACKAGE}/plugins/builtin/store.py" in names
    assert f"{PACKAGE}/templates/session_report.html" in names
    assert f"{PACKAGE}/tuning/search_spaces/small.toml" in names
