"""What a well-formed ``berth.json`` is: the type, range and form of every field, checked before it is used.

A manifest is data anyone can write, so every value that later names something is held to one rule of
:mod:`berth.names` here (the model name, versions, flavor and format identifiers, payload paths, library
names), the structure is bounded (nesting, sizes, counts), and each problem is reported as one line naming the
field: ``malformed manifest: files[2].path: '../x' has the segment '..': ...``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from berth import names
from berth.errors import BundleError

MAX_DEPTH = 64
MAX_FILES = 100_000
MAX_FILE_SIZE = 1 << 50  # 1 PiB: a bound on what an int in the manifest may claim
MAX_LIBRARIES = 1_000
MAX_COLUMNS = 100_000
MAX_COLUMN_NAME = 256
MAX_TENSOR_RANK = 32
MAX_SHORT_TEXT = 256
HEX = frozenset("0123456789abcdef")
LAYOUTS = frozenset({"table", "column", "tensor"})
OUTPUT_KINDS = frozenset({"classification", "regression", "tensor"})
OBJECT_FIELDS = ("flavor_options", "metrics", "params", "metadata", "lineage")


class Problem(Exception):
    """One field's problem: where (a path of keys and indexes) and what."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


def check(data: dict[str, Any]) -> None:
    """Raise :class:`BundleError` (one line) unless ``data`` is a well-formed manifest object."""
    try:
        check_depth(data)
        check_fields(data)
    except Problem as exc:
        raise BundleError(f"malformed manifest: {exc}") from None


def check_depth(data: Any) -> None:
    """Iteratively, so absurd nesting is refused instead of exhausting the stack."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Problem("(structure)", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def check_fields(data: dict[str, Any]) -> None:
    required(data, "name", "flavor", "format", "created_at", "python", "libraries", "files")
    rule(data["name"], "name", names.name_problem)
    for key in ("flavor", "format"):
        if not names.is_identifier(data[key]):
            raise Problem(key, f"{names.shown(data[key])} is not an identifier (letters, digits, '._-')")
    short_text(data["created_at"], "created_at")
    rule(data["python"], "python", names.version_problem)
    if data.get("berth_version"):
        rule(data["berth_version"], "berth_version", names.version_problem)
    if not isinstance(data.get("description", ""), str):
        raise Problem("description", "must be a string")
    check_libraries(data["libraries"])
    check_files(data["files"])
    for key in OBJECT_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise Problem(key, f"must be an object, not {type(data[key]).__name__}")
    if data.get("reference") is not None and not isinstance(data["reference"], dict):
        raise Problem("reference", "must be an object or null")
    tags = data.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise Problem("tags", "must be an object of strings")
    version = (data.get("metadata") or {}).get("registry_version")
    if version is not None:  # a served model reports it: a header value and a file name under the store
        if isinstance(version, bool) or not isinstance(version, int | str):
            raise Problem("metadata.registry_version", "must be a string or an integer")
        rule(str(version), "metadata.registry_version", names.version_problem)
    if data.get("signature") is not None:
        check_signature(data["signature"])
    if data.get("compiled") is not None:
        check_compiled(data["compiled"], data["files"])


def required(data: dict[str, Any], *keys: str) -> None:
    missing = [key for key in keys if key not in data]
    if missing:
        raise Problem(missing[0], "is missing")


def rule(value: Any, where: str, problem: Callable[[Any], str | None]) -> None:
    found = problem(value)
    if found:
        raise Problem(where, found)


def short_text(value: Any, where: str) -> None:
    if not isinstance(value, str) or len(value) > MAX_SHORT_TEXT:
        raise Problem(where, f"must be a string of at most {MAX_SHORT_TEXT} characters")


def integer(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Problem(where, f"{names.shown(value)} is not an integer from {low} to {high}")
    return value


def check_libraries(libraries: Any) -> None:
    if not isinstance(libraries, dict):
        raise Problem("libraries", "must be an object of distribution names and versions")
    if len(libraries) > MAX_LIBRARIES:
        raise Problem("libraries", f"lists more than {MAX_LIBRARIES} libraries")
    for name, version in libraries.items():
        if not names.is_distribution(name):
            raise Problem("libraries", f"{names.shown(name)} is not a distribution name")
        rule(version, f"libraries.{name}", names.version_problem)


def check_files(files: Any) -> None:
    if not isinstance(files, list):
        raise Problem("files", "must be a list")
    if len(files) > MAX_FILES:
        raise Problem("files", f"lists more than {MAX_FILES} files")
    seen: set[str] = set()
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"path", "sha256", "size"}:
            raise Problem(where, "must be an object with exactly path, sha256 and size")
        rule(entry["path"], f"{where}.path", names.path_problem)
        folded = entry["path"].casefold()  # model.pt and Model.pt are one file on macOS and Windows
        if folded in seen:
            raise Problem(f"{where}.path", f"{entry['path']!r} is listed twice")
        seen.add(folded)
        digest = entry["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= HEX:
            raise Problem(f"{where}.sha256", "must be 64 lowercase hexadecimal digits")
        integer(entry["size"], f"{where}.size", 0, MAX_FILE_SIZE)
    for path in sorted(seen):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise Problem("files", f"{'/'.join(parts[:depth])!r} is listed as a file and used as a directory")


def check_signature(signature: Any) -> None:
    if not isinstance(signature, dict):
        raise Problem("signature", "must be an object or null")
    if signature.get("layout") not in LAYOUTS:
        raise Problem("signature.layout", f"must be one of {', '.join(sorted(LAYOUTS))}")
    outputs = signature.get("outputs")
    if not isinstance(outputs, dict) or outputs.get("kind") not in OUTPUT_KINDS:
        raise Problem("signature.outputs", f"must be an object whose kind is one of {', '.join(sorted(OUTPUT_KINDS))}")
    short_text(outputs.get("dtype"), "signature.outputs.dtype")
    check_shape(outputs.get("shape", [-1]), "signature.outputs.shape")
    if outputs.get("classes") is not None and not isinstance(outputs["classes"], list):
        raise Problem("signature.outputs.classes", "must be a list or null")
    columns = signature.get("columns", [])
    if not isinstance(columns, list) or len(columns) > MAX_COLUMNS:
        raise Problem("signature.columns", f"must be a list of at most {MAX_COLUMNS} columns")
    for index, column in enumerate(columns):
        where = f"signature.columns[{index}]"
        if not isinstance(column, dict) or not {"name", "dtype"} <= set(column) <= {"name", "dtype", "nullable"}:
            raise Problem(where, "must be an object with name, dtype and optionally nullable")
        name = column["name"]
        if not isinstance(name, str) or len(name) > MAX_COLUMN_NAME or not name.isprintable():
            raise Problem(f"{where}.name", f"must be printable text of at most {MAX_COLUMN_NAME} characters")
        short_text(column["dtype"], f"{where}.dtype")
        if not isinstance(column.get("nullable", False), bool):
            raise Problem(f"{where}.nullable", "must be true or false")
    tensor = signature.get("tensor")
    if tensor is not None:
        if not isinstance(tensor, dict) or set(tensor) != {"dtype", "shape"}:
            raise Problem("signature.tensor", "must be an object with dtype and shape")
        short_text(tensor["dtype"], "signature.tensor.dtype")
        check_shape(tensor["shape"], "signature.tensor.shape")
    if not isinstance(signature.get("example", []), list):
        raise Problem("signature.example", "must be a list")


def check_shape(shape: Any, where: str) -> None:
    if not isinstance(shape, list | tuple) or len(shape) > MAX_TENSOR_RANK:
        raise Problem(where, f"must be a list of at most {MAX_TENSOR_RANK} dimensions")
    for index, size in enumerate(shape):
        integer(size, f"{where}[{index}]", -1, 1 << 40)


COMPILED_DTYPES = frozenset({"float32", "float64"})
OUTPUT_DTYPE = re.compile(r"[<>|=]?(?:b1|\?|bool|[iuf][1248]|u?int(?:8|16|32|64)|float(?:16|32|64)|O|object"
                          r"|U(?:[1-9]\d{0,2}|10[01]\d|102[0-4]))")
MAX_REASON = 1_000


def check_compiled(section: Any, files: list[dict[str, Any]]) -> None:
    """A refusal (``{"refused": reason}``) or a proof whose twin file is in the hashed file list."""
    if not isinstance(section, dict):
        raise Problem("compiled", "must be an object or null")
    if "refused" in section:
        if set(section) != {"refused"} or not isinstance(section["refused"], str) \
                or len(section["refused"]) > MAX_REASON:
            raise Problem("compiled.refused", f"must be the only key, a string of at most {MAX_REASON} characters")
        return
    required(section, "runtime", "file", "input_dtype", "outputs", "output", "rows_tried", "tolerance")
    if section["runtime"] != "onnxruntime":
        raise Problem("compiled.runtime", f"{names.shown(section['runtime'])} is not a known runtime (onnxruntime)")
    if section["file"] != "compiled/model.onnx" or not any(entry.get("path") == section["file"] for entry in files):
        raise Problem("compiled.file", "must be compiled/model.onnx, listed (and so hashed) in files")
    for key in ("input_dtype", "validate_dtype"):
        value = section.get(key)
        if value is not None and value not in COMPILED_DTYPES:
            raise Problem(f"compiled.{key}", f"must be one of {', '.join(sorted(COMPILED_DTYPES))}")
    outputs = section["outputs"]
    if not isinstance(outputs, dict) or set(outputs) != {"label", "proba"}:
        raise Problem("compiled.outputs", "must be an object with label and proba")
    short_text(outputs["label"], "compiled.outputs.label")
    if outputs["proba"] is not None:
        short_text(outputs["proba"], "compiled.outputs.proba")
    output = section["output"]
    if not isinstance(output, dict) or set(output) != {"dtype", "squeeze"} or not isinstance(output["squeeze"], bool):
        raise Problem("compiled.output", "must be an object with dtype and squeeze (true or false)")
    short_text(output["dtype"], "compiled.output.dtype")
    if not OUTPUT_DTYPE.fullmatch(output["dtype"]):  # it sizes the answers: "U100000000" is 400 MB a value
        raise Problem("compiled.output.dtype", "must be a bool, int, uint or float dtype of at most 8 bytes, "
                                               "object, or text of at most 1024 characters (e.g. <i8, <U12)")
    if section.get("classes") is not None:
        classes = section["classes"]
        if not isinstance(classes, list) or len(classes) > MAX_COLUMNS or not all(
                isinstance(c, str | int | float | bool) and (not isinstance(c, str) or len(c) <= MAX_SHORT_TEXT)
                for c in classes):
            raise Problem("compiled.classes", "must be a list of numbers or short strings")
    integer(section["rows_tried"], "compiled.rows_tried", 0, 1 << 40)
    if isinstance(section["tolerance"], bool) or not isinstance(section["tolerance"], int | float):
        raise Problem("compiled.tolerance", "must be a number")
    for key in ("versions", "worst_abs_diff"):
        if not isinstance(section.get(key, {}), dict):
            raise Problem(f"compiled.{key}", "must be an object")
    for key in ("tolerance_rule",):
        if key in section:
            short_text(section[key], f"compiled.{key}")
