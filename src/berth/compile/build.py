"""Build a bundle's compiled twin at save time: convert, prove, and write ``compiled/model.onnx`` only if proven.

:func:`compile_into` returns the manifest's ``compiled`` section: the proof, or ``{"refused": reason}``. It never
raises for a model that cannot be compiled (that model is served as it is); the bundle gets the file only with
a proof. ``flavors`` lists the flavors berth compiles; for any other (ONNX, Keras, torch, python) there is no
section at all.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from berth import environment
from berth.compile import RUNTIME, TWIN_FILE
from berth.compile.convert import Converted, Refusal, convert
from berth.compile.proof import compare, original_answers
from berth.compile.synth import proof_rows
from berth.flavors.base import Predictor
from berth.manifest_rules import OUTPUT_DTYPE
from berth.signature import Signature, json_ready

FLAVORS = frozenset({"sklearn", "lightgbm", "xgboost"})
MAX_REASON = 1_000


def compile_into(directory: Path, model: Any, flavor: str, predictor: Predictor, signature: Signature | None,
                 reference: dict[str, Any] | None, sample: Any) -> dict[str, Any] | None:
    """Write the twin under ``directory`` and return its proof, or return the refusal; None: not compiled."""
    if flavor not in FLAVORS:
        return None
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():  # the converters' and the models' own chatter is not the caller's
            warnings.simplefilter("ignore")
            section, data = prove(model, flavor, predictor, signature, reference, sample)
    except Refusal as exc:
        return {"refused": str(exc)[:MAX_REASON]}
    target = directory / TWIN_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    section["seconds"] = round(time.perf_counter() - started, 4)
    return section


def prove(model: Any, flavor: str, predictor: Predictor, signature: Signature | None,
          reference: dict[str, Any] | None, sample: Any) -> tuple[dict[str, Any], bytes]:
    from berth.compile.twin import TwinPredictor, new_session

    if signature is None or signature.layout != "table" or not signature.all_numeric:
        raise Refusal("only models taking a table of numeric columns are compiled")
    if signature.outputs.kind == "tensor" and signature.outputs.shape not in ((-1,), [-1]):
        raise Refusal("only models answering one value (or label) per row are compiled")
    converted = convert(model, flavor, len(signature.columns), predictor.input_dtype == "float32")
    rows, origins = proof_rows(signature, reference, sample_matrix(signature, sample))
    expected, kept, missing_allowed = original_answers(predictor, signature, rows)
    origins = [origin for origin, keep in zip(origins, kept, strict=True) if keep]
    classifier = predictor.classes is not None
    section = draft(converted, predictor, expected.values, missing_allowed, classifier)
    twin = TwinPredictor(new_session(converted.data), section)
    try:
        from berth.compile.proof import answers

        got = answers(twin, signature, rows[kept])
    except Exception as exc:
        raise Refusal(f"proof failed: the twin raised {type(exc).__name__}: {exc}") from exc
    section.update(compare(expected, got, origins, classifier=classifier, float32=converted.input_dtype == "float32"))
    return json_ready(section), converted.data


def draft(converted: Converted, predictor: Predictor, values: np.ndarray, missing_allowed: bool,
          classifier: bool) -> dict[str, Any]:
    if classifier and values.dtype.kind not in "biufOU":
        raise Refusal(f"class labels of dtype {values.dtype} are not compiled")
    if values.ndim != 1:
        raise Refusal(f"the model answers {values.ndim}-dimensional output; only one value per row is compiled")
    if not classifier and values.dtype.kind != "f":
        raise Refusal(f"outputs of dtype {values.dtype} are not compiled")
    dtype = "object" if values.dtype.kind == "O" else values.dtype.str
    if not OUTPUT_DTYPE.fullmatch(dtype):  # the manifest's bound (e.g. labels over 1024 characters)
        raise Refusal(f"outputs of dtype {dtype} are not compiled")
    proba = converted.proba if classifier and predictor.has_proba else None
    if classifier and predictor.has_proba and proba is None:
        raise Refusal("the converted classifier gives no probabilities")
    return {
        "runtime": RUNTIME,
        "file": TWIN_FILE,
        "versions": {**environment.capture([RUNTIME, "numpy"]), **converted.versions},
        "input_dtype": converted.input_dtype,
        "validate_dtype": predictor.input_dtype,
        "outputs": {"label": converted.label, "proba": proba},
        "output": {"dtype": dtype, "squeeze": True},
        "classes": json_ready(list(predictor.classes)) if classifier and predictor.classes is not None else None,
        "missing_allowed": missing_allowed,
    }


def sample_matrix(signature: Signature, sample: Any) -> np.ndarray | None:
    """The sample as a float64 matrix in the signature's column order (None when there is none or it does not
    fit: the proof then draws from the reference statistics only)."""
    if sample is None:
        return None
    from berth.coercion import coerce

    try:
        return np.asarray(coerce(signature, sample, to="ndarray", dtype="float64"), dtype=np.float64)
    except Exception:
        return None
