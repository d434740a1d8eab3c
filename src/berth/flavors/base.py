"""The flavor contract: detect a model, write its payload, load it back as a :class:`Predictor`.

Flavors are found through the ``berth.flavors`` entry-point group; berth registers its own built-ins the same
way a third-party package would (see ``pyproject.toml``). A flavor module must import its framework lazily, so
that ``import berth`` stays fast and a missing optional framework only matters when it is used.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from berth.errors import BerthWarning, BundleError, FlavorError, PredictionError, TrustError

if TYPE_CHECKING:
    from berth.manifest import Manifest

ENTRY_POINT_GROUP = "berth.flavors"
InputTarget = Literal["dataframe", "ndarray"]


class Predictor:
    """A loaded model behind one interface. ``input_target`` and ``input_dtype`` say what it wants."""

    input_target: InputTarget = "ndarray"
    input_dtype: str | None = None
    classes: list[Any] | None = None
    # The call is a library's own code whose duration depends on the input's size alone (an onnxruntime graph, a
    # scikit-learn estimator): a server may time it once and run cheap calls on its event loop
    # (berth.serving.inline). Code a user wrote can block for ever, so it stays in the model's thread.
    bounded_time: bool = False

    @property
    def has_proba(self) -> bool:
        return False

    def predict(self, inputs: Any) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, inputs: Any) -> np.ndarray:
        raise PredictionError("this model does not give class probabilities")


@dataclass
class SavedPayload:
    """What a flavor wrote: its files, the libraries they need, and options the loader reads back."""

    files: list[str]
    libraries: list[str]
    predictor: Predictor
    options: dict[str, Any] = field(default_factory=dict)


class Flavor:
    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]  # the first is the default
    unsafe_formats: ClassVar[frozenset[str]] = frozenset()  # formats that run code on load: need trust
    priority: ClassVar[int] = 100  # lower is asked first in detection

    def handles(self, model: Any) -> bool:
        raise NotImplementedError

    def accepts(self, model: Any, format: str) -> bool:
        """Whether this flavor can write ``model`` as ``format`` (a converting flavor says yes to more)."""
        return self.handles(model)

    def save(self, model: Any, directory: Path, *, format: str, sample: Any, options: dict[str, Any]) -> SavedPayload:
        raise NotImplementedError

    def load(self, directory: Path, manifest: Manifest, *, trust: bool, trusted_types: list[str]) -> Predictor:
        raise NotImplementedError

    def check_format(self, format: str | None) -> str:
        chosen = format or self.formats[0]
        if chosen not in self.formats:
            raise FlavorError(f"the {self.name} flavor writes {', '.join(self.formats)}; not {chosen!r}")
        return chosen

    def payload(self, directory: Path, manifest: Manifest, name: str) -> Path:
        """The path of the payload file ``name``: only a file the manifest lists (and so was verified).

        Every loader reads its files through this, so a manifest that leaves the payload out of ``files`` (and
        with it out of verification) cannot get an unverified file loaded.
        """
        if name not in {entry.path for entry in manifest.files}:
            raise BundleError(f"the manifest does not list {name}, the {manifest.flavor}/{manifest.format} "
                              "payload, so it was not verified; refusing to load it")
        return directory / name

    def require_trust(self, format: str, trust: bool) -> None:
        if format in self.unsafe_formats and not trust:
            raise TrustError(
                f"this bundle's payload is {format}, which runs code while loading; load it only if you trust "
                "its source, with trust=True (--trust)"
            )


def class_path(obj: Any) -> list[str]:
    """Fully qualified names of the classes in ``type(obj)``'s MRO: detection without importing frameworks."""
    return [f"{cls.__module__}.{cls.__qualname__}" for cls in type(obj).__mro__]


def module_roots(obj: Any) -> set[str]:
    return {cls.__module__.split(".")[0] for cls in type(obj).__mro__}


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


@functools.cache
def get_flavor(name: str) -> Flavor:
    entry = _entry_points().get(name)
    if entry is None:
        known = ", ".join(sorted(_entry_points())) or "none (is berth installed?)"
        raise FlavorError(f"unknown flavor {name!r}; installed flavors: {known}")
    try:
        flavor_class = entry.load()
    except ImportError as exc:
        raise FlavorError(f"flavor {name!r} cannot be imported: {exc}") from exc
    return flavor_class()


@functools.cache
def all_flavors() -> list[Flavor]:
    """Every flavor that imports; a broken third-party flavor is skipped with a warning, not fatal."""
    found = []
    for name in _entry_points():
        try:
            found.append(get_flavor(name))
        except FlavorError as exc:
            warnings.warn(exc.message, BerthWarning, stacklevel=2)
    return sorted(found, key=lambda f: (f.priority, f.name))


def flavor_for(model: Any) -> Flavor:
    for flavor in all_flavors():
        if flavor.handles(model):
            return flavor
    raise FlavorError(
        f"no flavor handles {type(model).__module__}.{type(model).__qualname__}: berth saves scikit-learn "
        "estimators, XGBoost, LightGBM, CatBoost, ONNX, Keras and PyTorch models, or any object with a predict "
        "method"
    )
