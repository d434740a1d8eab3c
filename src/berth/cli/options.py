"""Command-line options that more than one command module declares the same way."""

from __future__ import annotations

from typing import Annotated

import typer

Trust = Annotated[bool, typer.Option("--trust", help="Allow payloads that run code when loaded (pickle, "
                                                     "joblib); only for sources you trust.")]
TrustedTypes = Annotated[list[str] | None, typer.Option(
    "--trusted-type", metavar="TYPE", help="A type a skops payload may construct (repeatable).")]
