"""Turn a plain model file made the tutorial way into a bundle.

Reads what tutorials write: ``joblib.dump(model, "m.joblib")`` (compressed or not), ``pickle.dump(model, f)``
(``.pkl``, ``.pickle``, ``.sav``), the wrapper ``pickle.dump({"metadata": {...}, "model": model}, f)``, and
ONNX files. Pickle and joblib run code while they are read, so those files are opened only with
``trust=True``, checked before any unpickler sees the file. The bundle is written with :func:`berth.save` in
the flavor's safe default format (skops for scikit-learn), loaded back once to prove that it loads, and its
manifest records the source: ``lineage["imported_from"] = {"file", "sha256", "format"}``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from berth import storage
from berth.errors import (
    BerthError,
    BundleError,
    FlavorError,
    SignatureError,
    TrustError,
    UsageError,
)
from berth.manifest import MANIFEST_NAME, Manifest, sanitize_params, sha256_file

SUFFIXES = {".joblib": "joblib", ".jbl": "joblib", ".pkl": "pickle", ".pickle": "pickle", ".sav": "pickle",
            ".onnx": "onnx"}
COMPRESSIONS = (".gz", ".z", ".bz2", ".xz", ".lzma")  # joblib.dump compresses by these extensions
UNSAFE = frozenset({"joblib", "pickle"})
FEATURE_NAME_KEYS = ("feature_names", "feature_names_in", "features", "feature_columns", "columns")
WRAPPER_KEYS = ("model", "estimator", "pipeline")


def import_model(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    trust: bool = False,
    sample: Any = None,
    name: str | None = None,
    format: str | None = None,
    overwrite: bool = False,
    reference: Any = None,
) -> Manifest:
    """Import the model file at ``path`` as a bundle at ``output``; returns the bundle's manifest.

    ``sample`` is data or the path of a CSV, Parquet or JSON Lines file of a few input rows; it gives the
    signature. ``reference`` is the training data (or a file of it): its statistics go into the manifest as the
    baseline of drift monitoring; without a sample it gives the signature too. ``format`` is the bundle's
    payload format (default: the flavor's safe one).
    """
    kind = file_format(path)
    if kind in UNSAFE and not trust:
        raise TrustError(
            f"{Path(str(path)).name} is a {kind} file: reading it runs code stored in it. Import it only if "
            "you trust its source, with trust=True (--trust)"
        )
    if storage.exists(storage.join(str(output), MANIFEST_NAME)) and not overwrite:
        raise BundleError(f"{output} already holds a bundle; pass overwrite=True (--overwrite) to replace it")
    with storage.local_file(path) as local:
        digest = sha256_file(local)
        model, metadata = unwrap(read_model(local, kind), local.name)
    reference = reference_rows(reference)
    if sample is None and reference is not None:
        sample = input_columns(reference, model)
        sample = sample.head(5) if hasattr(sample, "head") else sample[:5]
    rows, synthetic = sample_rows(sample, model, metadata)
    reference = fit_reference(reference, rows)
    origin = {"file": Path(str(path)).name, "sha256": digest, "format": kind}
    bundle_name = name or storage.local_path(str(output).rstrip("/")).name
    return write_bundle(model, output, origin, sample=rows, synthetic=synthetic, name=bundle_name,
                        format=format, metadata=metadata, overwrite=overwrite, reference=reference)


MAX_REFERENCE_ROWS = 1_000_000


def reference_rows(reference: Any) -> Any:
    """The reference as data: a CSV or Parquet file (or JSON Lines) is read, up to ``MAX_REFERENCE_ROWS``."""
    if not isinstance(reference, str | os.PathLike):
        return reference
    from berth.batch import read_head

    return read_head(reference, rows=MAX_REFERENCE_ROWS)


def input_columns(reference: Any, model: Any) -> Any:
    """The model's input columns of a training table (which often carries the label too)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None or not hasattr(reference, "columns"):
        expected = getattr(model, "n_features_in_", None)
        if expected is not None and hasattr(reference, "columns") and len(reference.columns) != int(expected):
            raise SignatureError(f"the reference data has {len(reference.columns)} columns but the model takes "
                                 f"{expected}; pass a sample of the inputs (--sample) to say which are inputs")
        return reference
    missing = [str(n) for n in names if n not in reference.columns]
    if missing:
        raise SignatureError(f"the reference data lacks the model's input columns: {', '.join(missing)}")
    return reference[list(names)]


def fit_reference(reference: Any, sample: Any) -> Any:
    """The reference's columns that the signature has (a training file often carries the label too)."""
    if reference is None or not hasattr(reference, "columns") or not hasattr(sample, "columns"):
        return reference
    wanted = [c for c in sample.columns if c in reference.columns]
    missing = [str(c) for c in sample.columns if c not in reference.columns]
    if missing:
        raise SignatureError(f"the reference data lacks the model's input columns: {', '.join(missing)}")
    return reference[wanted]


def file_format(path: str | os.PathLike[str]) -> str:
    """``joblib``, ``pickle`` or ``onnx`` from the file name; another name is sniffed for pickle's header."""
    name = Path(str(path)).name.lower()
    stem = name.removesuffix(next((c for c in COMPRESSIONS if name.endswith(c)), ""))
    suffix = Path(stem).suffix
    if suffix in SUFFIXES and (stem == name or suffix != ".onnx"):
        return "joblib" if stem != name else SUFFIXES[suffix]
    if not storage.is_remote(path) and storage.local_path(path).is_file():
        with storage.local_path(path).open("rb") as handle:
            head = handle.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # the PROTO opcode of pickle
            return "pickle"
    raise UsageError(f"cannot tell what {Path(str(path)).name} holds: berth imports .joblib, .pkl, .pickle, "
                     ".sav and .onnx files")


def read_model(path: Path, kind: str) -> Any:
    """Read the file (the caller has checked trust). joblib reads plain pickles and its own files alike."""
    if kind == "onnx":
        try:
            import onnx
        except ImportError as exc:
            raise FlavorError("reading .onnx files needs onnx: pip install 'berth[onnx]'") from exc
        return onnx.load(str(path))
    import joblib

    try:
        return joblib.load(path)
    except (AttributeError, ImportError) as exc:
        raise FlavorError(
            f"{path.name} refers to code that cannot be imported here ({exc}); a class or function "
            "defined in a notebook or script (__main__) must move to an importable module first"
        ) from exc
    except Exception as exc:  # unpickling can raise anything
        raise FlavorError(f"cannot read {path.name} as {kind}: {type(exc).__name__}: {exc}") from exc


def unwrap(obj: Any, filename: str) -> tuple[Any, dict[str, Any]]:
    """The model, and the metadata of the tutorial wrapper ``{"metadata": {...}, "model": model}``."""
    if not isinstance(obj, dict):
        return obj, {}
    key = next((k for k in WRAPPER_KEYS if k in obj), None)
    if key is None:
        raise FlavorError(f"{filename} holds a dict with keys {', '.join(map(repr, obj))}; berth unwraps "
                          "{'model': model, 'metadata': {...}}")
    extras = {k: v for k, v in obj.items() if k not in (key, "metadata")}
    companions = sorted(str(k) for k, v in extras.items() if hasattr(v, "transform") or hasattr(v, "predict"))
    if companions:
        raise FlavorError(
            f"{filename} holds the model together with {', '.join(companions)}, which berth would not apply "
            "before predicting; put them in one scikit-learn Pipeline, save that, and import it"
        )
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        metadata = {"metadata": metadata}
    return obj[key], sanitize_params({**extras, **(metadata or {})})


def sample_rows(sample: Any, model: Any, metadata: dict[str, Any]) -> tuple[Any, bool]:
    """The sample as data, and whether it was made up from feature names in the metadata (no real rows)."""
    if isinstance(sample, str | os.PathLike):
        from berth.batch import read_head

        return read_head(sample), False
    if sample is not None:
        return sample, False
    names = next((metadata[k] for k in FEATURE_NAME_KEYS if isinstance(metadata.get(k), list)), None)
    if not names or hasattr(model, "feature_names_in_") or not all(isinstance(n, str) for n in names):
        return None, False
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and int(expected) != len(names):
        raise SignatureError(f"the metadata names {len(names)} features but the model takes {expected}; "
                             "pass a sample (--sample data.csv) instead")
    import pandas as pd

    return pd.DataFrame([[0.0] * len(names)], columns=names), True


def write_bundle(model: Any, output: str | os.PathLike[str], origin: dict[str, Any], *, sample: Any,
                 synthetic: bool, name: str, format: str | None, metadata: dict[str, Any],
                 overwrite: bool, reference: Any = None) -> Manifest:
    """Save, load back once, record the origin in the manifest, then publish the bundle at ``output``."""
    from berth.bundle import choose_flavor, save
    from berth.model import load

    flavor = choose_flavor(model, None, format)
    payload_format = flavor.check_format(format)
    fallback = next((f for f in flavor.formats if f in flavor.unsafe_formats), None)
    hint = (f"; import it with format={fallback!r} (--format {fallback}), which loads only with trust"
            if fallback and payload_format not in flavor.unsafe_formats else "")
    with storage.staging_directory(output) as staged:
        bundle = staged / "bundle"
        try:
            manifest = save(model, bundle, sample=sample, name=name, flavor=flavor.name,
                            format=payload_format, metadata=metadata, reference=reference)
        except FlavorError as exc:
            raise FlavorError(exc.message + hint, exc.details) from exc
        try:
            load(bundle, trust=True)
        except BerthError as exc:
            raise FlavorError(f"the {payload_format} payload does not load back: {exc.message}{hint}",
                              exc.details) from exc
        except Exception as exc:  # a payload that writes but does not read (e.g. a lambda in skops)
            raise FlavorError(f"the {payload_format} payload does not load back: {type(exc).__name__}: "
                              f"{exc}{hint}") from exc
        manifest.lineage["imported_from"] = origin
        if synthetic and manifest.signature is not None:  # column names only: no example rows to show
            manifest.signature = dataclasses.replace(manifest.signature, example=[])
        (bundle / MANIFEST_NAME).write_text(manifest.to_json())
        storage.publish(bundle, output, MANIFEST_NAME, overwrite=overwrite)
    return manifest
