"""A bundle loaded and verified: :class:`LoadedModel`, and :func:`load` that makes one from any model URI."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from berth import environment, packing
from berth.coercion import coerce
from berth.errors import BerthError, FlavorError, PredictionError
from berth.flavors.base import Predictor, get_flavor
from berth.manifest import Manifest
from berth.registry.default import registry_for
from berth.registry.uri import is_model_uri
from berth.signature import Signature
from berth.source import LocalBundle, open_bundle, read_manifest_at

if TYPE_CHECKING:
    from berth.registry.store import Registry
    from berth.registry.uri import RegistryEntry


class LoadedModel:
    """Predicts from request-shaped input: rows, records, columns by name, DataFrames or arrays."""

    def __init__(self, manifest: Manifest, predictor: Predictor, source: str,
                 registry: RegistryEntry | None = None, *, compiled: bool = False) -> None:
        self.manifest = manifest
        self.predictor = predictor
        self.source = source
        self.registry = registry  # name, version and alias in the model registry, when loaded from models:/
        self.compiled = compiled  # predictions come from the compiled twin (see berth.compile)

    @property
    def runtime(self) -> str:
        """What predicts, for logs: the compiled twin with its proof, or the original (and why)."""
        from berth.compile import describe

        if self.compiled:
            return f"compiled twin: {describe(self.manifest)}"
        return f"original {self.manifest.flavor} model; compiled twin: {describe(self.manifest)}"

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def signature(self) -> Signature:
        assert self.manifest.signature is not None
        return self.manifest.signature

    @property
    def classes(self) -> list[Any] | None:
        return self.signature.outputs.classes

    @property
    def has_proba(self) -> bool:
        return self.predictor.has_proba

    def prepare(self, data: Any, *, row_offset: int = 0) -> Any:
        """Validate ``data`` against the signature and shape it as the model wants; raises SignatureError."""
        return coerce(self.signature, data, to=self.predictor.input_target, dtype=self.predictor.input_dtype,
                      row_offset=row_offset)

    def predict(self, data: Any) -> np.ndarray:
        return self.predict_prepared(self.prepare(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        return self.predict_proba_prepared(self.prepare(data))

    def predict_prepared(self, inputs: Any) -> np.ndarray:
        """Predict on input that :meth:`prepare` returned (the batcher's entry point).

        Floating-point overflow inside the model (valid but extreme input, say 1e300) gives the model's own
        answer, as it would in a notebook, not a warning that a warnings-as-errors process turns into a failure.
        """
        try:
            with np.errstate(all="ignore"):
                return self.predictor.predict(inputs)
        except BerthError:
            raise
        except Exception as exc:
            raise PredictionError(f"the model raised {type(exc).__name__}: {exc}") from exc

    def predict_proba_prepared(self, inputs: Any) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                return self.predictor.predict_proba(inputs)
        except BerthError:
            raise
        except Exception as exc:
            raise PredictionError(f"the model raised {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<LoadedModel {self.name!r} flavor={self.manifest.flavor} format={self.manifest.format}>"


def load(
    uri: str | os.PathLike[str],
    *,
    trust: bool = False,
    trusted_types: Iterable[str] = (),
    allow_version_mismatch: bool = False,
    registry: Registry | None = None,
    compiled: bool = True,
) -> LoadedModel:
    """Load and verify the bundle at ``uri``: a directory, a packed ``.berth`` file, or an fsspec URL.

    Every payload file's sha256 is checked first; pickle-based payloads need ``trust=True``; a different major
    version of Python or of a library the flavor needs refuses to load unless ``allow_version_mismatch``.
    A model URI (``models:/iris/3``, ``models:/iris@production``) loads from ``registry``, by default the
    registry the environment names (``BERTH_REGISTRY_URL``). With ``compiled`` (the default), a bundle holding
    a proven compiled twin predicts with it through onnxruntime (when installed) and its original payload is
    not read at all; ``compiled=False`` loads the original.
    """
    with open_bundle(uri, registry=registry_for([str(uri)], registry)) as bundle:
        return load_bundle(bundle, trust=trust, trusted_types=list(trusted_types),
                           allow_version_mismatch=allow_version_mismatch, compiled=compiled)


def load_bundle(bundle: LocalBundle, *, trust: bool = False, trusted_types: Iterable[str] = (),
                allow_version_mismatch: bool = False, compiled: bool = True) -> LoadedModel:
    """Load a bundle that :func:`berth.source.open_bundle` opened (and verified)."""
    manifest = bundle.manifest
    environment.check(manifest.python, manifest.libraries, allow_mismatch=allow_version_mismatch)
    if compiled and manifest.compiled:
        from berth.compile import proven
        from berth.compile.twin import load_twin, runtime_available

        if proven(manifest) and runtime_available():
            get_flavor(manifest.flavor).require_trust(manifest.format, trust)  # the same rule either way
            return LoadedModel(manifest, load_twin(bundle.directory, manifest), bundle.uri, bundle.entry,
                               compiled=True)
    flavor = get_flavor(manifest.flavor)
    try:
        predictor = flavor.load(bundle.directory, manifest, trust=trust, trusted_types=list(trusted_types))
    except BerthError:
        raise
    except Exception as exc:  # a framework's own error while reading a payload that passed verification
        raise FlavorError(f"the {manifest.flavor} flavor cannot load {bundle.uri} ({manifest.format}): "
                          f"{type(exc).__name__}: {exc}") from exc
    return LoadedModel(manifest, predictor, bundle.uri, bundle.entry)


def inspect(uri: str | os.PathLike[str], *, registry: Registry | None = None) -> Manifest:
    """Read a bundle's manifest without loading its payload."""
    return read_manifest_at(uri, registry=registry_for([str(uri)], registry))


def verify(uri: str | os.PathLike[str], *, registry: Registry | None = None) -> Manifest:
    """Check every file of the bundle at ``uri`` against its manifest; raises IntegrityError naming the file."""
    if not is_model_uri(str(uri)) and packing.is_archive(uri):
        return read_manifest_at(uri)  # an archive is checked file by file as it streams: nothing written
    with open_bundle(uri, registry=registry_for([str(uri)], registry)) as bundle:
        return bundle.manifest
