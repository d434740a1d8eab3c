"""Import an MLflow model directory (``MLmodel`` plus the files of its flavors) as a berth bundle.

``MLmodel`` is YAML written by whoever handed the model over, so it is read as hostile input: size-bounded,
``yaml.safe_load``, every field checked for type, and every path it names must stay inside the model directory
(no absolute paths, no ``..``). The flavor is chosen in this order:

* ``xgboost``, ``lightgbm``, ``catboost``: native model files, read without trust and saved with berth's native
  flavors (MLflow serializes lightgbm's scikit-learn wrappers like scikit-learn models: see the next line);
* ``sklearn``: MLflow 3 writes skops by default, read through berth's own trusted-type check (the
  ``skops_trusted_types`` the MLmodel lists are ignored); MLflow 2 wrote pickle or cloudpickle, which runs code
  when read: only with ``trust``, and the bundle is then written in berth's safe default (skops);
* ``python_function`` alone (a custom ``mlflow.pyfunc.PythonModel``): with ``trust``, and with mlflow installed,
  a ``python`` bundle.

The MLflow signature and the saved input example become the bundle's signature and example
(:mod:`berth.mlflow_signature`); ``MLmodel``'s ``metadata`` becomes the bundle's metadata; its run id, model
uuid, time and MLflow version are recorded in ``lineage["imported_from"]``. MLflow keeps metrics and params in
its tracking server, not in the model directory: they are read from ``MLmodel`` only if a tool wrote them there.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from berth import storage
from berth.errors import BerthError, BundleError, FlavorError, TrustError, UsageError
from berth.mlflow_signature import example_rows, sample_for, signature_columns

if TYPE_CHECKING:
    from berth.manifest import Manifest

MLMODEL = "MLmodel"
MAX_MLMODEL_BYTES = 1 << 20
NATIVE = ("xgboost", "lightgbm", "catboost", "sklearn")
PYFUNC = "python_function"
XGBOOST_CLASSES = {f"xgboost.sklearn.{n}": n for n in
                   ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")}
XGBOOST_CLASSES["xgboost.core.Booster"] = "Booster"
CATBOOST_CLASSES = ("CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker", "CatBoost")


def is_mlflow_model(path: str | os.PathLike[str]) -> bool:
    """A directory holding an ``MLmodel`` file (local or remote), or the ``MLmodel`` file itself."""
    text = str(path).rstrip("/")
    if text.endswith("/" + MLMODEL) or text == MLMODEL:
        return True
    if storage.is_remote(text):
        return storage.exists(storage.join(text, MLMODEL))
    return (storage.local_path(text) / MLMODEL).is_file()


def model_directory(path: str | os.PathLike[str]) -> str:
    """The directory of an MLflow model named by itself or by its ``MLmodel`` file."""
    text = str(path).rstrip("/")
    if text == MLMODEL or text.endswith("/" + MLMODEL):
        return text[: -len(MLMODEL)].rstrip("/") or "."
    return text


def read_mlmodel(directory: Path, label: str | None = None) -> dict[str, Any]:
    """The parsed ``MLmodel`` of ``directory``, with its ``flavors`` checked to be a mapping of mappings."""
    import yaml

    file = directory / MLMODEL
    if not file.is_file():
        hint = " (it is a berth bundle already)" if (directory / "berth.json").is_file() else ""
        raise BundleError(f"{label or directory} is not an MLflow model directory: it has no {MLMODEL} file{hint}")
    if file.stat().st_size > MAX_MLMODEL_BYTES:
        raise BundleError(f"{MLMODEL} is larger than {MAX_MLMODEL_BYTES} bytes; refusing to read it")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BundleError(f"{MLMODEL} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{MLMODEL} must hold a mapping, not {type(data).__name__}")
    flavors = data.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise BundleError(f"{MLMODEL} has no flavors mapping")
    for name, fields in flavors.items():
        if not isinstance(name, str) or not isinstance(fields, dict):
            raise BundleError(f"{MLMODEL}: flavor {name!r} must be a mapping of its fields")
    return data


def field(flavor: str, fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value:
        raise BundleError(f"{MLMODEL}: flavors.{flavor}.{key} must be a non-empty string, not {value!r}")
    return value


def member(directory: Path, relative: Any, where: str) -> Path:
    """The file ``relative`` names inside ``directory``; refuses absolute paths and paths that leave it."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise BundleError(f"{MLMODEL}: {where} must be a relative path, not {relative!r}")
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or relative.startswith(("/", "\\")) or (pure.parts and ":" in pure.parts[0]):
        raise BundleError(f"{MLMODEL}: {where} is an absolute path ({relative!r}); it must be relative to the "
                          "model directory")
    root = directory.resolve()
    target = (root / pure).resolve()
    if ".." in pure.parts or not target.is_relative_to(root):
        raise BundleError(f"{MLMODEL}: {where} ({relative!r}) points outside the model directory")
    if not target.exists():
        raise BundleError(f"{MLMODEL}: {where} names {relative!r}, which the model directory does not have")
    return target


def choose(flavors: dict[str, Any]) -> str:
    """The flavor to read. ``python_function`` only when it is the model's only flavor (a custom PythonModel):
    next to another flavor it merely wraps that one, and berth does not import what it cannot read natively."""
    found = next((name for name in NATIVE if name in flavors), None)
    if found is not None:
        return found
    if set(flavors) == {PYFUNC}:
        return PYFUNC
    raise FlavorError(f"{MLMODEL} has no flavor berth can import: it has {', '.join(sorted(flavors))}; berth "
                      f"reads {', '.join(NATIVE)}, or a model whose only flavor is {PYFUNC}")


# --------------------------------------------------------------------------- reading each flavor's model


def read_flavor(directory: Path, name: str, fields: dict[str, Any], *, trust: bool) -> tuple[Any, str]:
    """The model object and a short description of the file it came from."""
    readers = {"xgboost": read_xgboost, "lightgbm": read_lightgbm, "catboost": read_catboost,
               "sklearn": read_sklearn, PYFUNC: read_pyfunc}
    try:
        return readers[name](directory, fields, trust=trust)
    except BerthError:
        raise
    except Exception as exc:  # each library raises its own errors for a file it cannot read
        raise FlavorError(f"cannot read the {name} model of this MLflow directory: {type(exc).__name__}: {exc}") \
            from exc


def read_xgboost(directory: Path, fields: dict[str, Any], *, trust: bool) -> tuple[Any, str]:
    model_class = field("xgboost", fields, "model_class")
    if model_class not in XGBOOST_CLASSES:
        raise FlavorError(f"{MLMODEL}: flavors.xgboost.model_class {model_class!r} is not one berth recreates "
                          f"({', '.join(XGBOOST_CLASSES)})")
    path = member(directory, fields.get("data"), "flavors.xgboost.data")
    xgboost = framework("xgboost")
    model = getattr(xgboost, XGBOOST_CLASSES[model_class])()
    model.load_model(str(path))
    return model, f"xgboost {fields.get('model_format', 'model')} file"


def read_lightgbm(directory: Path, fields: dict[str, Any], *, trust: bool) -> tuple[Any, str]:
    model_class = field("lightgbm", fields, "model_class")
    path = member(directory, fields.get("data"), "flavors.lightgbm.data")
    lightgbm = framework("lightgbm")
    if model_class == "lightgbm.basic.Booster":
        return lightgbm.Booster(model_file=str(path)), "lightgbm text model"
    if not model_class.startswith("lightgbm.sklearn."):
        raise FlavorError(f"{MLMODEL}: flavors.lightgbm.model_class {model_class!r} is not a lightgbm model")
    # MLflow writes only a bare Booster in LightGBM's text format; the scikit-learn wrappers are serialized.
    serialization = fields.get("serialization_format", "cloudpickle")
    return read_serialized(path, serialization, trust, f"MLflow's lightgbm flavor stores this {model_class}"), \
        str(serialization)


def read_catboost(directory: Path, fields: dict[str, Any], *, trust: bool) -> tuple[Any, str]:
    model_type = field("catboost", fields, "model_type")
    if model_type not in CATBOOST_CLASSES:
        raise FlavorError(f"{MLMODEL}: flavors.catboost.model_type {model_type!r} is not one berth recreates "
                          f"({', '.join(CATBOOST_CLASSES)})")
    save_format = fields.get("save_format", "cbm")
    if save_format != "cbm":
        raise FlavorError(f"{MLMODEL}: flavors.catboost.save_format is {save_format!r}; berth reads cbm files")
    path = member(directory, fields.get("data"), "flavors.catboost.data")
    model = getattr(framework("catboost"), model_type)()
    model.load_model(str(path), format="cbm")
    return model, "catboost cbm file"


def read_sklearn(directory: Path, fields: dict[str, Any], *, trust: bool) -> tuple[Any, str]:
    serialization = fields.get("serialization_format", "cloudpickle")
    path = member(directory, fields.get("pickled_model"), "flavors.sklearn.pickled_model")
    return read_serialized(path, serialization, trust, "MLflow's sklearn flavor stores this model"), \
        str(serialization)


def read_serialized(path: Path, serialization: Any, trust: bool, reason: str) -> Any:
    """A scikit-learn-API model MLflow wrote as skops (MLflow 3's default), pickle or cloudpickle (MLflow 2's).

    skops files go through berth's own trusted-type check: the ``skops_trusted_types`` an MLmodel lists are
    not taken on its word."""
    if serialization == "skops":
        from berth.flavors.sklearn import load_skops

        return load_skops(path, trust=trust, trusted_types=[])
    if serialization not in ("pickle", "cloudpickle"):
        raise FlavorError(f"{MLMODEL}: serialization_format {serialization!r} is not skops, pickle or cloudpickle")
    if not trust:
        raise TrustError(f"{reason} as a {serialization} file ({path.name}): reading it runs code stored in it. "
                         "Import it only if you trust its source, with trust=True (--trust); berth then writes it "
                         "in a format that loads without trust")
    from berth.importer import read_model

    return read_model(path, "pickle")


def read_pyfunc(directory: Path, fields: dict[str, Any], *, trust: bool) -> tuple[Any, str]:
    if not trust:
        raise TrustError("this MLflow model has only the python_function flavor: loading it runs the Python code "
                         "and pickles it holds. Import it only if you trust its source, with trust=True (--trust)")
    if fields.get("artifacts"):
        raise FlavorError("this python_function model has artifacts (files its code opens from the MLflow "
                          "directory), which a berth python bundle does not carry; berth imports python_function "
                          "models without artifacts")
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise FlavorError("a python_function-only MLflow model is loaded by MLflow itself: pip install mlflow "
                          "(or mlflow-skinny)") from exc
    return PyfuncModel(mlflow.pyfunc.load_model(str(directory))), "python_function"


class PyfuncModel:
    """An MLflow pyfunc model behind berth's python flavor: ``predict`` takes a DataFrame."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, inputs: Any) -> Any:
        return self.model.predict(inputs)


def framework(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise FlavorError(f"this MLflow model needs {name}: pip install 'berth[{name}]'") from exc


def import_mlflow(path: str | os.PathLike[str], output: str | os.PathLike[str], *, trust: bool = False,
                  sample: Any = None, name: str | None = None, format: str | None = None,
                  overwrite: bool = False, compile: bool = True) -> Manifest:
    """Import the MLflow model directory at ``path`` (local or a URL) as a bundle at ``output``."""
    from berth.importer import sample_rows
    from berth.manifest import MANIFEST_NAME

    if storage.exists(storage.join(str(output), MANIFEST_NAME)) and not overwrite:
        raise BundleError(f"{output} already holds a bundle; pass overwrite=True (--overwrite) to replace it")
    source = model_directory(path)
    with storage.local_directory(source) as directory:
        if not directory.is_dir():
            raise UsageError(f"not found: {source}")
        data = read_mlmodel(directory, source)
        flavors = data["flavors"]
        chosen = choose(flavors)
        model, read_as = read_flavor(directory, chosen, flavors[chosen], trust=trust)
        columns = signature_columns(data)
        rows, synthetic = sample_rows(sample, model, {}) if sample is not None else sample_for(
            columns, input_example(directory, data))
    origin: dict[str, Any] = {"mlflow_model": source if storage.is_remote(source)
                              else storage.local_path(source).name, "flavor": chosen, "read_as": read_as}
    for key in ("run_id", "model_uuid", "model_id", "mlflow_version", "utc_time_created", "artifact_path"):
        if isinstance(data.get(key), str | int | float) and not isinstance(data.get(key), bool):
            origin[key] = data[key]
    from berth.importer import write_bundle

    return write_bundle(
        model, output, origin, sample=rows, synthetic=synthetic,
        name=name or storage.local_path(str(output).rstrip("/")).name,
        format=format or ("cloudpickle" if chosen == PYFUNC else None),
        metadata=mapping(data, "metadata"), metrics=numbers(mapping(data, "metrics")),
        params=mapping(data, "params"), overwrite=overwrite, compile=compile,
        nullable=frozenset(column for column, _, optional in columns or [] if optional))


def input_example(directory: Path, data: dict[str, Any]) -> Any:
    info = data.get("saved_input_example_info")
    if info is None:
        return None
    if not isinstance(info, dict):
        raise BundleError(f"{MLMODEL}: saved_input_example_info must be a mapping")
    return example_rows(member(directory, info.get("artifact_path"), "saved_input_example_info.artifact_path"), info)


def mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional top-level mapping of ``MLmodel`` (``metadata``; ``metrics`` and ``params`` if a tool wrote
    them: MLflow keeps those in its tracking server, not in the model directory)."""
    from berth.manifest import sanitize_params

    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BundleError(f"{MLMODEL}: {key} must be a mapping, not {type(value).__name__}")
    return sanitize_params({str(k): v for k, v in value.items()})


def numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    bad = sorted(k for k, v in metrics.items() if not isinstance(v, int | float) or isinstance(v, bool))
    if bad:
        raise BundleError(f"{MLMODEL}: metrics must be numbers; {', '.join(bad)} are not")
    return metrics
