"""Commands for monitoring: berth monitor report/check/feedback/prune, berth ui.

Like ``berth.cli``, nothing heavy is imported at module level: each command imports what it uses.
"""

from __future__ import annotations

import typer


def install(app: typer.Typer) -> None:
    """Add this module's commands to the ``berth`` app."""
