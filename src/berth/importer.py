"""Turn a plain model file made the tutorial way into a bundle.

Reads what tutorials write: ``joblib.dump(model, "m.joblib")`` (compressed or not), ``pickle.dump(model, f)``
(``.pkl``, ``.pickle``, ``.sav``), the wrapper ``pickle.dump({"metadata": {...}, "model": model}, f)``, and
ONNX files, and the native files of the gradient-boosting libraries (XGBoost ``.json``/``.ubj``, LightGBM's
text ``.txt``, CatBoost ``.cbm``), which run no code. An MLflow model directory goes to
:mod:`berth.mlflow_import`. Pickle and joblib run code while they are read, so those files are opened only with
``trust=True``, checked before any unpickler sees the file. The bundle is written with :func:`berth.save` in
the flavor's safe default format (skops for scikit-learn), loaded back once to prove that it loads, and its
manifest records the source: ``lineage["imported_from"] = {"file", "sha256", "format"}``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
from berth.source import LocalBundle, ModelResolver, Uri, open_bundle

SUFFIXES = {".joblib": "joblib", ".jbl": "joblib", ".pkl": "pickle", ".pickle": "pickle", ".sav": "pickle",
            ".onnx": "onnx"}
COMPRESSIONS = (".gz", ".z", ".bz2", ".xz", ".lzma")  # joblib.dump compresses by these extensions
NATIVE_SUFFIXES = {".ubj": "xgboost", ".json": "xgboost", ".txt": "lightgbm", ".cbm": "catboost"}
UNSAFE = frozenset({"joblib", "pickle"})
CATBOOST_CLASSIFIER_LOSSES = frozenset({"Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll"})
FEATURE_NAME_KEYS = ("feature_names", "feature_names_in", "features", "feature_columns", "columns")
WRAPPER_KEYS = ("model", "estimator", "pipeline")


def is_plain_model_file(uri: Uri) -> bool:
    """A file made the tutorial way (``joblib.dump``, ``pickle.dump``, an ONNX file), not a bundle."""
    name = str(uri).lower()
    name = name.removesuffix(next((c for c in COMPRESSIONS if name.endswith(c)), ""))
    return name.endswith(tuple(SUFFIXES))


@contextmanager
def open_model(uri: Uri, *, registry: ModelResolver | None = None, trust: bool = False) -> Iterator[LocalBundle]:
    """For the server: :func:`berth.source.open_bundle`, or for a plain model file a temporary bundle imported
    from it (``trust`` allows pickle and joblib files)."""
    if not is_plain_model_file(uri):
        with open_bundle(uri, registry=registry) as bundle:
            yield bundle
        return
    with tempfile.TemporaryDirectory(prefix="berth-import-") as scratch:
        directory = Path(scratch) / Path(str(uri)).stem
        yield LocalBundle(str(uri), directory, import_model(uri, directory, trust=trust))


def import_model(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    trust: bool = False,
    sample: Any = None,
    name: str | None = None,
    format: str | None = None,
    overwrite: bool = False,
    examples: bool = True,
    reference: Any = None,
    compile: bool = True,
) -> Manifest:
    """Import the model file at ``path`` as a bundle at ``output``; returns the bundle's manifest.

    ``sample`` is data or the path of a CSV, Parquet or JSON Lines file of a few input rows; it gives the
    signature. ``reference`` is the training data (or a file of it): its statistics go into the manifest as the
    baseline of drift monitoring; without a sample it gives the signature too. ``format`` is the bundle's
    payload format (default: the flavor's safe one). ``compile=False`` adds no compiled twin (see berth.compile).
    """
    from berth.mlflow_import import import_mlflow, is_mlflow_model

    if str(path).startswith(("runs:/", "mlflow-artifacts:/")):
        raise UsageError(f"{path} names an artifact of an MLflow tracking server, which berth does not talk to: "
                         f"download it first (mlflow artifacts download -u {path} -d DIR) and import DIR")
    if is_mlflow_model(path) or (not storage.is_remote(path) and storage.local_path(path).is_dir()):
        return import_mlflow(path, output, trust=trust, sample=sample, name=name, format=format,
                             overwrite=overwrite, compile=compile)
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
    from berth.bundle import default_name  # the save side (pandas, reference statistics): not for open_model

    bundle_name = name if name is not None else default_name(output)
    return write_bundle(model, output, origin, sample=rows, synthetic=synthetic, name=bundle_name,
                        format=format, metadata=metadata, overwrite=overwrite, examples=examples,
                        reference=reference, compile=compile)


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
    """``joblib``, ``pickle``, ``onnx`` or a boosting library's name from the file name; another name is sniffed
    for pickle's header."""
    name = Path(str(path)).name.lower()
    if Path(name).suffix in NATIVE_SUFFIXES and (Path(name).suffix != ".txt" or is_lightgbm_text(path)):
        return NATIVE_SUFFIXES[Path(name).suffix]
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
                     ".sav, .onnx, XGBoost .json/.ubj, LightGBM .txt and CatBoost .cbm files, and MLflow model "
                     "directories")


def is_lightgbm_text(path: str | os.PathLike[str]) -> bool:
    """LightGBM's text model starts with the line ``tree``; any other ``.txt`` is not one."""
    if storage.is_remote(path):
        return True  # not fetched twice: a wrong file fails when LightGBM reads it
    local = storage.local_path(path)
    if not local.is_file():
        return True
    with local.open("rb") as handle:
        return handle.readline().strip() == b"tree"


def read_model(path: Path, kind: str) -> Any:
    """Read the file (the caller has checked trust). joblib reads plain pickles and its own files alike."""
    if kind == "onnx":
        try:
            import onnx
        except ImportError as exc:
            raise FlavorError("reading .onnx files needs onnx: pip install 'berth[onnx]'") from exc
        return onnx.load(str(path))
    if kind in NATIVE_SUFFIXES.values():
        return read_native(path, kind)
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


def read_native(path: Path, kind: str) -> Any:
    """A boosting library's own model file, as the wrapper it was saved from when the file says so."""
    import importlib
    import json

    try:
        library = importlib.import_module(kind)
    except ImportError as exc:
        raise FlavorError(f"reading {path.name} needs {kind}: pip install 'berth[{kind}]'") from exc
    try:
        if kind == "lightgbm":
            return library.Booster(model_file=str(path))
        if kind == "catboost":
            model = library.CatBoost()
            model.load_model(str(path), format="cbm")
            if model.get_all_params().get("loss_function") in CATBOOST_CLASSIFIER_LOSSES:
                model = library.CatBoostClassifier()
                model.load_model(str(path), format="cbm")
            return model
        booster = library.Booster()
        booster.load_model(str(path))
        wrapper = {"classifier": "XGBClassifier", "regressor": "XGBRegressor", "ranker": "XGBRanker"}.get(
            json.loads(booster.attr("scikit_learn") or "{}").get("_estimator_type"))
        if wrapper is None:
            return booster
        model = getattr(library, wrapper)()
        model.load_model(str(path))
        return model
    except Exception as exc:  # each library raises its own error for a file that is not its model
        raise FlavorError(f"cannot read {path.name} as a {kind} model: {type(exc).__name__}: {exc}") from exc


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
                 overwrite: bool, examples: bool = True, metrics: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None, nullable: frozenset[str] = frozenset(),
                 reference: Any = None, compile: bool = True) -> Manifest:
    """Save, load back once, record the origin in the manifest, then publish the bundle at ``output``.

    ``nullable`` names input columns that may be missing although the sample had no missing value (an MLflow
    signature's optional columns)."""
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
            manifest = save(model, bundle, sample=sample, name=name, flavor=flavor.name, examples=examples,
                            format=payload_format, metadata=metadata, metrics=metrics, params=params,
                            reference=reference, compile=compile)
        except FlavorError as exc:
            raise FlavorError(exc.message + hint, exc.details) from exc
        try:
            load(bundle, trust=True, compiled=False)  # the original payload must load back
        except BerthError as exc:
            raise FlavorError(f"the {payload_format} payload does not load back: {exc.message}{hint}",
                              exc.details) from exc
        except Exception as exc:  # a payload that writes but does not read (e.g. a lambda in skops)
            raise FlavorError(f"the {payload_format} payload does not load back: {type(exc).__name__}: "
                              f"{exc}{hint}") from exc
        manifest.lineage["imported_from"] = origin
        if synthetic and manifest.signature is not None:  # column names only: no example rows to show
            manifest.signature = dataclasses.replace(manifest.signature, example=[])
        if nullable and manifest.signature is not None:
            columns = tuple(dataclasses.replace(c, nullable=True) if c.name in nullable else c
                            for c in manifest.signature.columns)
            manifest.signature = dataclasses.replace(manifest.signature, columns=columns)
        (bundle / MANIFEST_NAME).write_text(manifest.check().to_json())
        storage.publish(bundle, output, MANIFEST_NAME, overwrite=overwrite)
    return manifest
