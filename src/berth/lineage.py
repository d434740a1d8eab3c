"""Where a bundle came from: the git commit of the working directory and who made it."""

from __future__ import annotations

import getpass
import socket
import subprocess
from pathlib import Path
from typing import Any


def git_state(directory: str | Path = ".") -> dict[str, Any] | None:
    """Commit and dirty flag of the repository around ``directory``; None outside a repository or without git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                                capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def author() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"user": user, "host": socket.gethostname()}
