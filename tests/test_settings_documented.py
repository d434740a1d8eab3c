"""Every environment variable berth reads is in the one table of docs/operations.md (as datasette's test_docs).

The source is tokenized, so only names inside strings, docstrings and comments count as variables
(``BERTH_ROUTES`` as a Python name does not).
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from berth import contracts
from berth.serving.settings import ServeSettings

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "operations.md"
VARIABLE = re.compile(r"\bBERTH_[A-Z0-9_]*[A-Z0-9]\b")
TEXT_TOKENS = {tokenize.STRING, tokenize.COMMENT} | {getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def variables_in(source: str) -> set[str]:
    found: set[str] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in TEXT_TOKENS:
            found.update(VARIABLE.findall(token.string))
    return found


def variables_read() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / "berth").rglob("*.py")):
        for name in variables_in(path.read_text()):
            where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return where


def table() -> dict[str, str]:
    """variable -> setting, from the rows of the table under "Environment variables berth reads"."""
    text = DOC.read_text().split("## Environment variables berth reads", 1)[1]
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]) if cells else ():
            rows[name] = cells[1].strip("`")
    return rows


def test_the_scanner_reads_strings_and_comments_but_not_names() -> None:
    source = 'BERTH_ROUTES = {"/x"}\nX = "BERTH_ONE"  # BERTH_TWO\nf"BERTH_{name}"\n"""``BERTH_THREE``"""\n'
    assert variables_in(source) == {"BERTH_ONE", "BERTH_TWO", "BERTH_THREE"}


def test_every_variable_read_is_documented() -> None:
    documented = table()
    missing = {name: files for name, files in variables_read().items() if name not in documented}
    assert not missing, f"BERTH_* variables read but not in docs/operations.md: {missing}"


def test_every_server_setting_is_a_row_with_its_field() -> None:
    documented = table()
    for field in ServeSettings.model_fields:
        variable = f"BERTH_{field.upper()}"
        assert documented.get(variable) == field, f"{variable} ({field}) is not in docs/operations.md's table"


def test_the_platform_variables_are_documented() -> None:
    documented = table()
    for name in (*contracts.PORT_ENV, *contracts.VERTEX_ENV, contracts.PLATFORM_SETTING_ENV):
        assert name in documented, name


def test_no_row_documents_a_variable_berth_does_not_read() -> None:
    read = set(variables_read()) | {f"BERTH_{field.upper()}" for field in ServeSettings.model_fields}
    stale = {name for name in table() if name.startswith("BERTH_")} - read
    assert not stale, f"docs/operations.md documents variables nothing reads: {sorted(stale)}"
