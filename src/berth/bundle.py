"""Write bundles: ``berth.json`` plus payload files, each hashed.

The write side only: reading and verifying a bundle live with the manifest (:mod:`berth.manifest`), so that
reading one does not import flavors, coercion, reference statistics or pandas.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

from berth import environment, lineage, names, storage
from berth.coercion import coerce
from berth.errors import BerthError, BundleError, FlavorError, SignatureError, UsageError
from berth.flavors.base import Flavor, Predictor, all_flavors, flavor_for, get_flavor
from berth.manifest import MANIFEST_NAME, Manifest, hash_files, sanitize_params
from berth.reference import prediction_stats, reference_stats
from berth.signature import OutputSpec, Signature, json_ready
from berth.signature_inference import columns_from_model, infer_input, infer_output

REFERENCE_PREDICTION_ROWS = 100_000


def choose_flavor(model: Any, flavor: str | None, format: str | None) -> Flavor:
    if flavor:
        return get_flavor(flavor)
    if format:
        for candidate in all_flavors():
            if format in candidate.formats and candidate.accepts(model, format):
                return candidate
        raise FlavorError(f"no flavor writes {type(model).__qualname__} as {format!r}")
    return flavor_for(model)


def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    sample: Any = None,
    reference: Any = None,
    name: str | None = None,
    flavor: str | None = None,
    format: str | None = None,
    metrics: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    description: str = "",
    overwrite: bool = False,
    examples: bool = True,
    compile: bool = True,
    **options: Any,
) -> Manifest:
    """Save ``model`` as a bundle at ``path`` (a directory, or an fsspec URL such as ``s3://bucket/key``).

    ``sample`` (a few rows of input) gives the signature; ``reference`` (the training data) gives the reference
    statistics that monitoring compares live traffic with. ``examples=False`` keeps no rows of the sample in
    the manifest (the signature's example, shown by a server's /docs): for sensitive data; the reference holds
    only aggregate statistics either way. ``compile=True`` adds a compiled twin (ONNX) when the model converts
    and the twin is proven equivalent, else records why not (see :mod:`berth.compile`). Extra keyword arguments
    go to the flavor, e.g. ``compress=("zlib", 3)`` for ``format="joblib"``.
    """
    if name is not None and names.name_problem(name):
        raise UsageError(f"name: {names.name_problem(name)}")
    chosen = choose_flavor(model, flavor, format)
    payload_format = chosen.check_format(format)
    if storage.exists(storage.join(str(path), MANIFEST_NAME)) and not overwrite:
        raise BundleError(f"{path} already holds a bundle; pass overwrite=True (--overwrite) to replace it")
    with storage.staging_directory(path) as staged:
        payload = chosen.save(model, staged, format=payload_format, sample=sample, options=options)
        signature = build_signature(model, payload.predictor, sample, payload.options)
        if not examples:
            signature = Signature(signature.layout, signature.outputs, signature.columns, signature.tensor, [])
        statistics = build_reference(reference, signature, payload.predictor)
        compiled = build_twin(staged, model, chosen.name, payload.predictor, signature, statistics,
                              sample) if compile else None
        manifest = Manifest(
            name=name if name is not None else default_name(path),
            flavor=chosen.name,
            format=payload_format,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            python=environment.python_version(),
            libraries=environment.capture([*payload.libraries, "berth"]),
            files=hash_files(staged, payload.files + twin_files(compiled)),
            signature=signature,
            flavor_options=json_ready(payload.options),
            reference=statistics,
            metrics=json_ready(dict(metrics or {})),
            params=sanitize_params(dict(params or {})),
            tags={str(k): str(v) for k, v in (tags or {}).items()},
            metadata=json_ready(dict(metadata or {})),
            lineage=build_lineage(),
            description=description,
            berth_version=environment.installed_version("berth") or "",
            compiled=compiled,
        )
        (staged / MANIFEST_NAME).write_text(manifest.check().to_json())
        storage.publish(staged, path, MANIFEST_NAME, overwrite=overwrite)
    return manifest


def build_twin(directory: Any, model: Any, flavor: str, predictor: Predictor, signature: Signature,
               reference: dict[str, Any] | None, sample: Any) -> dict[str, Any] | None:
    from berth.compile.build import compile_into

    return compile_into(directory, model, flavor, predictor, signature, reference, sample)


def twin_files(compiled: dict[str, Any] | None) -> list[str]:
    return [compiled["file"]] if compiled and "refused" not in compiled else []


def default_name(path: str | os.PathLike[str]) -> str:
    """A bundle's name when none is given: its directory's name, made a valid name (see berth.names)."""
    base = storage.local_path(str(path).rstrip("/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", base).lstrip("._-")[:128].rstrip("-")
    return cleaned or "model"


def build_signature(model: Any, predictor: Predictor, sample: Any, options: dict[str, Any]) -> Signature:
    placeholder = OutputSpec("tensor", "unknown")
    input_spec = options.pop("input_spec", None)  # a flavor's fallback, e.g. an ONNX graph's declared input
    if sample is not None:
        layout, columns, tensor, example = infer_input(sample)
        signature = Signature(layout, placeholder, columns, tensor, example)
    elif input_spec:
        signature = Signature.from_dict({**input_spec, "outputs": {"kind": "tensor", "dtype": "unknown"}})
    else:
        signature = Signature("table", placeholder, columns_from_model(model))
    probe = sample if sample is not None else [[0] * len(signature.columns)] if signature.columns else None
    if probe is None:
        return signature
    try:
        inputs = coerce(signature, probe, to=predictor.input_target, dtype=predictor.input_dtype)
        predictions = predictor.predict(inputs)
    except SignatureError as exc:
        raise SignatureError(f"the sample does not fit the inferred signature: {exc.message}", exc.details) from exc
    except Exception as exc:
        if sample is not None:
            raise FlavorError(f"the model failed to predict on the sample: {exc}") from exc
        outputs = OutputSpec("classification" if predictor.classes else "tensor", "unknown",
                             classes=json_ready(predictor.classes), probabilities=predictor.has_proba)
        return Signature(signature.layout, outputs, signature.columns, signature.tensor, signature.example)
    outputs = infer_output(predictions, predictor.classes, predictor.has_proba)
    return Signature(signature.layout, outputs, signature.columns, signature.tensor, signature.example)


def build_reference(reference: Any, signature: Signature, predictor: Predictor) -> dict[str, Any] | None:
    if reference is None:
        return None
    if signature.layout == "tensor":
        raise SignatureError("reference statistics need tabular data; this model takes tensors")
    stats = reference_stats(reference)
    rows = reference.sample(REFERENCE_PREDICTION_ROWS, random_state=0) if hasattr(reference, "sample") and len(
        reference) > REFERENCE_PREDICTION_ROWS else reference
    try:
        inputs = coerce(signature, rows, to=predictor.input_target, dtype=predictor.input_dtype)
        stats["predictions"] = prediction_stats(predictor.predict(inputs))
    except BerthError as exc:
        raise SignatureError(f"the reference data does not fit the signature: {exc.message}", exc.details) from exc
    return stats


def build_lineage() -> dict[str, Any]:
    info: dict[str, Any] = {"created_by": lineage.author()}
    git = lineage.git_state()
    if git:
        info["git"] = git
    return info
