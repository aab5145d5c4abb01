"""Project files named relative to the repository (``models/...``, ``calibration/...``), found from any directory.

The defaults of the CLI, the nodes and the launch files name shipped files relative to the repository root. A user
who runs ``ros2 launch legion_bringup mujoco_plant.launch.py`` or ``legion run`` from another directory means the
same files, so :func:`project_path` looks for a relative path first in the working directory (a user's own file
wins), then below the repository this package was installed from.
"""
from __future__ import annotations

from pathlib import Path

#: The repository root (editable install, the development layout); may not exist for a wheel install.
REPO_ROOT = Path(__file__).resolve().parents[1]


def project_path(path: str | Path) -> Path:
    """``path`` if it is absolute or exists relative to the working directory; else ``REPO_ROOT / path`` if that
    exists; else ``path`` unchanged (the caller's "not found" error then names what the user gave)."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    shipped = REPO_ROOT / path
    return shipped if shipped.exists() else path
