"""Rich rendering for the command line: the summary of a manifest, and a progress bar for batch scoring.

On a terminal, tables are drawn by rich; when stdout is not a terminal (a pipe, a file, ``| grep``), every table
is written as plain tab-separated lines instead (a ``# title`` line, a header line, one line per row), so no
value is cut, wrapped mid-word or decorated. ``--json`` stays the format for programs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from berth.batch import Progress as ProgressCallback
    from berth.manifest import Manifest

SHORT_SHA = 12


class PlainWhenPiped(Console):
    """A console that prints tables as tab-separated text when its output is not a terminal."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal:
            super().print(*objects, **kwargs)
            return
        for renderable in objects:
            self.file.write("".join(f"{line}\n" for line in plain_lines(renderable)))


def stdout_console() -> Console:
    return PlainWhenPiped(highlight=False, soft_wrap=True)


def plain_lines(renderable: Any) -> list[str]:
    """A renderable as lines of plain text: tables as TSV, groups in order, text as it is."""
    if isinstance(renderable, Group):
        lines: list[str] = []
        for part in renderable.renderables:
            if lines:
                lines.append("")
            lines.extend(plain_lines(part))
        return lines
    if isinstance(renderable, Table):
        return table_lines(renderable)
    if isinstance(renderable, Text):
        return renderable.plain.splitlines()
    return str(renderable).splitlines()


def table_lines(table: Table) -> list[str]:
    lines = [f"# {cell_text(table.title)}"] if table.title else []
    if table.show_header:
        lines.append("\t".join(cell_text(column.header) for column in table.columns))
    columns = [list(column.cells) for column in table.columns]
    lines.extend("\t".join(cell_text(cells[row]) for cells in columns) for row in range(table.row_count))
    return lines


def cell_text(cell: Any) -> str:
    """A cell's text on one line, tabs and newlines turned into spaces (a TSV field cannot hold them)."""
    text = cell.plain if isinstance(cell, Text) else str(cell if cell is not None else "")
    return " ".join(text.replace("\t", " ").splitlines())


def render_manifest(manifest: Manifest) -> RenderableType:
    """What a person wants from ``berth.json``, in tables; the exact JSON is ``berth inspect --json``."""
    parts: list[RenderableType] = [overview(manifest)]
    if manifest.signature is not None:
        parts.append(signature_table(manifest))
    parts.append(files_table(manifest))
    if manifest.compiled is not None:
        parts.append(compiled_table(manifest))
    for title, values in (("Metrics", manifest.metrics), ("Params", manifest.params), ("Tags", manifest.tags),
                          ("Metadata", manifest.metadata), ("Lineage", manifest.lineage)):
        if values:
            parts.append(key_values(title, values))
    if manifest.reference:
        parts.append(reference_table(manifest.reference))
    return Group(*parts)


def overview(manifest: Manifest) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    libraries = ", ".join(f"{name} {version}" for name, version in sorted(manifest.libraries.items()))
    rows = [
        ("name", manifest.name),
        ("flavor", manifest.flavor),
        ("format", manifest.format),
        ("created", manifest.created_at),
        ("python", manifest.python),
        ("libraries", libraries or "-"),
        ("size", human_size(manifest.size)),
        ("digest", manifest.content_digest),
        ("berth", manifest.berth_version or "-"),
        ("description", manifest.description),
    ]
    for key, value in rows:
        if value:
            table.add_row(key, Text(str(value)))
    return table


def compiled_table(manifest: Manifest) -> RenderableType:
    """The compiled twin's proof (rows, worst difference, tolerance, versions), or why there is none."""
    from berth.compile import describe

    section = manifest.compiled or {}
    if "refused" in section:
        return Text(f"Compiled twin: {describe(manifest)}")
    table = Table(title=f"Compiled twin: {describe(manifest)}", title_justify="left")
    table.add_column("proof")
    table.add_column("value", overflow="fold")
    versions: dict[str, Any] = section["versions"] if isinstance(section.get("versions"), dict) else {}
    rows = [("file", section.get("file")), ("rows tried", section.get("rows_tried")),
            ("worst difference", section.get("worst_abs_diff")),
            ("tolerance", f"{section.get('tolerance')} ({section.get('tolerance_rule', '')})"),
            ("labels checked", section.get("labels_checked")),
            ("label ties skipped", section.get("label_ties_skipped")), ("input", section.get("input_dtype")),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
            ("seconds", section.get("seconds"))]
    for key, value in rows:
        if value is not None and value != "":
            table.add_row(key, Text(str(value)))
    return table


def signature_table(manifest: Manifest) -> RenderableType:
    signature = manifest.signature
    assert signature is not None
    outputs = signature.outputs
    described = f"outputs: {outputs.kind}, {outputs.dtype}, shape {list(outputs.shape)}"
    if outputs.classes is not None:
        described += f", classes {outputs.classes}"
    if outputs.probabilities:
        described += ", with probabilities"
    table = Table(title=f"Signature ({signature.layout})", title_justify="left")
    if signature.tensor is not None:
        table.add_column("dtype")
        table.add_column("shape")
        table.add_row(signature.tensor.dtype, str(list(signature.tensor.shape)))
    else:
        table.add_column("column")
        table.add_column("dtype")
        table.add_column("nullable")
        for column in signature.columns:
            table.add_row(Text(column.name), column.dtype, "yes" if column.nullable else "no")
    return Group(table, Text(described))


def files_table(manifest: Manifest) -> Table:
    table = Table(title="Files", title_justify="left")
    table.add_column("path")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    for entry in manifest.files:
        table.add_row(Text(entry.path), human_size(entry.size), entry.sha256[:SHORT_SHA])
    return table


def key_values(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in values.items():
        table.add_row(Text(str(key)), Text(flat(value)))
    return table


def reference_table(reference: dict[str, Any]) -> Table:
    table = Table(title=f"Reference data ({reference.get('rows', '?')} rows)", title_justify="left")
    for name in ("feature", "type", "missing", "mean", "std", "min", "max", "top values"):
        table.add_column(name, justify="left" if name in ("feature", "type", "top values") else "right")
    rows = dict(reference.get("features", {}))
    if reference.get("predictions"):
        rows["(predictions)"] = reference["predictions"]
    for feature, stats in rows.items():
        numbers = [number(stats.get(key)) for key in ("mean", "std", "min", "max")]
        top = ""
        if stats.get("type") == "categorical":
            frequencies = list(stats.get("frequencies", {}).items())[:3]
            top = ", ".join(f"{value} ({count})" for value, count in frequencies)
        kind, missing = stats.get("type", "?"), str(stats.get("missing", 0))
        table.add_row(Text(feature), kind, missing, *numbers, Text(top))
    return table


def flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(flat(v) for v in value) + "]"
    return number(value) if isinstance(value, float) else str(value)


def number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def human_size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


@contextmanager
def progress_reporter(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A callback drawing a progress bar on stderr, or None when stderr is not a terminal."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scoring", total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update

