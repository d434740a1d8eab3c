"""PyTorch modules, written as TorchScript (the default), a ``torch.export`` program, or a state dict.

* ``torchscript`` (``model.pt``): the module is scripted with ``torch.jit.script``; when scripting fails it is
  traced on the sample with ``torch.jit.trace``. A TorchScript archive is a program (PyTorch's security
  policy: treat it as code from its source), so loading needs trust.
* ``torch_export`` (``model.pt2``): ``torch.export.export`` on the sample, with a dynamic batch axis when the
  model allows it (else a fixed batch, which berth feeds in chunks). ``torch.export.load`` unpickles parts of
  the archive, so loading needs trust too.
* ``state_dict`` (``weights.pt``): only the weights, read back with ``torch.load(weights_only=True)`` into
  ``model_class="package.module:ClassName"`` built with ``model_kwargs={...}`` (both stored in the manifest).
  Loading runs no code from the bundle, only the named class of an installed package: no trust needed.

Options (keywords of ``berth.save``): ``classes=[...]`` makes the model a classifier: ``predict`` returns the
class of the largest output, ``predict_proba`` the softmax of the outputs (a single output column with two
classes is read as a binary logit, through a sigmoid). If the model already outputs probabilities, say
``output="probabilities"`` (the default is ``"logits"``). ``input_dtype=`` overrides the input dtype, which is
otherwise float32, or the sample's integer dtype when the module refuses floats (token ids for an
embedding). Modules are saved and run in eval mode,
under ``torch.inference_mode``, on the CPU; a module returning a tuple is read by its first element.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth.errors import FlavorError, PredictionError
from berth.flavors.base import Flavor, Predictor, SavedPayload, class_path, module_roots
from berth.flavors.network import (
    COMMON_OPTIONS,
    NetworkPredictor,
    check_options,
    check_same,
    classification_options,
    first_line,
    input_dtype_for,
    sample_array,
)

if TYPE_CHECKING:
    from berth.manifest import Manifest

PAYLOAD = {"torchscript": "model.pt", "torch_export": "model.pt2", "state_dict": "weights.pt"}
MODULE = "torch.nn.modules.module.Module"
EXPORTED = "torch.export.exported_program.ExportedProgram"
STATE_DICT_OPTIONS = frozenset({"model_class", "model_kwargs"})
CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class TorchPredictor(NetworkPredictor):
    def __init__(self, module: Any, *, classes: list[Any] | None = None, output: str = "logits",
                 input_dtype: str = "float32", batch: int | None = None) -> None:
        super().__init__(classes=classes, output=output, input_dtype=input_dtype)
        self.module = module
        self.batch = batch  # a fixed batch size the module was exported with, or None

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(inputs)
        if self.batch is None or len(array) == self.batch:
            return self.forward(array)
        parts = []
        for start in range(0, len(array), self.batch):
            chunk = array[start:start + self.batch]
            padding = self.batch - len(chunk)
            if padding:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], padding, axis=0)])
            parts.append(self.forward(chunk)[:self.batch - padding])
        return np.concatenate(parts)

    def forward(self, array: np.ndarray) -> np.ndarray:
        import torch

        if not array.flags.writeable:  # torch warns on every read-only array (pandas copy-on-write gives them)
            array = array.copy()
        with torch.inference_mode():
            result = self.module(torch.from_numpy(array))
        if isinstance(result, tuple | list):
            result = result[0]
        if not isinstance(result, torch.Tensor):
            raise PredictionError(f"the module returned {type(result).__name__}, not a tensor")
        return result.detach().cpu().numpy()


def eager(model: Any, array: np.ndarray) -> np.ndarray:
    """The original model's outputs, in eval mode."""
    if EXPORTED in class_path(model):
        return TorchPredictor(model.module()).forward(array)
    with eval_mode(model):
        return TorchPredictor(model).forward(array)


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Eval mode for scripting, tracing and exporting; every submodule's own mode restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """torch 2.11+ deprecates torch.jit; the format is berth's or the caller's choice, not news to them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated",
                                category=DeprecationWarning)
        yield


def to_torchscript(model: Any, example: Any) -> Any:
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return model
    with eval_mode(model), quiet_jit():
        try:
            return torch.jit.script(model)
        except Exception as script_error:  # TorchScript's frontend raises many kinds
            if example is None:
                raise FlavorError(f"torch.jit.script cannot compile this module "
                                  f"({first_line(script_error)}); pass sample= to trace it instead, or use "
                                  "format='torch_export'") from script_error
            try:
                return torch.jit.trace(model, example)
            except Exception as exc:
                raise FlavorError(f"neither torch.jit.script ({first_line(script_error)}) nor "
                                  f"torch.jit.trace ({first_line(exc)}) can convert this module") from exc


def export_program(model: Any, example: Any) -> tuple[Any, int | None]:
    """An ExportedProgram and its fixed batch size (None when the batch axis is dynamic)."""
    import torch

    if EXPORTED in class_path(model):
        return model, None
    if example is None:
        raise FlavorError("format='torch_export' needs sample= (a few rows of input) to trace the model")
    batch = example if example.shape[0] > 1 else torch.cat([example, example])  # a batch of 1 specializes
    with eval_mode(model):
        try:
            dynamic = ({0: torch.export.Dim("batch")},)
            return torch.export.export(model, (batch,), dynamic_shapes=dynamic), None
        except Exception:  # the model pins its batch size: export it for one row at a time
            try:
                return torch.export.export(model, (example[:1],)), 1
            except Exception as exc:
                raise FlavorError(f"torch.export cannot export this module: {first_line(exc)}") from exc


def build_module(model_class: str, model_kwargs: dict[str, Any], weights: Path) -> Any:
    """An instance of ``model_class`` with the weights read back without unpickling code."""
    import torch

    module_name, _, qualname = model_class.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise FlavorError(f"model_class {model_class!r} cannot be imported: {exc}") from exc
    if not (isinstance(target, type) and issubclass(target, torch.nn.Module)):
        raise FlavorError(f"model_class {model_class!r} is not a torch.nn.Module subclass")
    try:
        module = target(**model_kwargs)
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # a constructor or a state dict that does not fit
        raise FlavorError(f"cannot rebuild {model_class} from its state dict: {first_line(exc)}") from exc
    return module.eval()


def state_dict_options(options: dict[str, Any]) -> dict[str, Any]:
    model_class = options.get("model_class")
    if not isinstance(model_class, str) or not CLASS_PATH.match(model_class):
        raise FlavorError("format='state_dict' needs model_class='package.module:ClassName', the class to "
                          "load the weights into (with model_kwargs={...} for its constructor)")
    model_kwargs = options.get("model_kwargs") or {}
    try:
        json.dumps(model_kwargs)
    except (TypeError, ValueError) as exc:
        raise FlavorError(f"model_kwargs must be a JSON-ready dict of constructor arguments: {exc}") from exc
    if not isinstance(model_kwargs, dict):
        raise FlavorError("model_kwargs must be a dict of constructor arguments")
    return {"model_class": model_class, "model_kwargs": model_kwargs}


class TorchFlavor(Flavor):
    name = "torch"
    formats = ("torchscript", "torch_export", "state_dict")
    unsafe_formats = frozenset({"torchscript", "torch_export"})

    def handles(self, model: Any) -> bool:
        path = class_path(model)
        return (MODULE in path and "keras" not in module_roots(model)) or EXPORTED in path

    def save(self, model: Any, directory: Path, *, format: str, sample: Any,
             options: dict[str, Any]) -> SavedPayload:
        import torch

        known = COMMON_OPTIONS | (STATE_DICT_OPTIONS if format == "state_dict" else frozenset())
        check_options(self.name, options, known)
        if EXPORTED in class_path(model) and format != "torch_export":
            raise FlavorError("an ExportedProgram is saved with format='torch_export'")
        values = sample_array(sample) if sample is not None else None
        saved: dict[str, Any] = {**classification_options(options, "logits"),
                                 "input_dtype": input_dtype_for(values, options, lambda a: eager(model, a))}
        example = expected = None
        if values is not None:
            example = torch.from_numpy(np.ascontiguousarray(values.astype(saved["input_dtype"])))
            try:
                expected = eager(model, example.numpy())
            except Exception as exc:  # the user's module raised
                raise FlavorError(f"the model fails on the sample: {first_line(exc)}") from exc
        path = directory / PAYLOAD[format]
        if format == "torchscript":
            module = to_torchscript(model, example)
            with quiet_jit():
                torch.jit.save(module, str(path))
        elif format == "torch_export":
            program, saved["batch"] = export_program(model, example)
            torch.export.save(program, path)
            module = program.module()
        else:
            saved.update(state_dict_options(options))
            torch.save(model.state_dict(), path)
            module = build_module(saved["model_class"], saved["model_kwargs"], path)
        predictor = TorchPredictor(module, **predictor_options(saved))
        if example is not None and expected is not None:
            check_same(expected, predictor.raw(example.numpy()), f"saved {format} module")
        return SavedPayload([path.name], ["torch", "numpy"], predictor, saved)

    def load(self, directory: Path, manifest: Manifest, *, trust: bool,
             trusted_types: list[str]) -> Predictor:
        format = manifest.format
        self.require_trust(format, trust)
        import torch

        options = manifest.flavor_options
        path = directory / PAYLOAD[format]
        if format == "state_dict":
            spec = state_dict_options(options)
            module = build_module(spec["model_class"], spec["model_kwargs"], path)
        else:
            try:
                if format == "torchscript":
                    with quiet_jit():
                        module = torch.jit.load(str(path), map_location="cpu").eval()
                else:
                    module = torch.export.load(path).module()  # exported in eval mode; eval() is refused
            except Exception as exc:
                raise FlavorError(f"cannot load {path.name}: {first_line(exc)}") from exc
        return TorchPredictor(module, **predictor_options(options))


def predictor_options(options: dict[str, Any]) -> dict[str, Any]:
    return {"classes": options.get("classes"), "output": options.get("output") or "logits",
            "input_dtype": options.get("input_dtype") or "float32", "batch": options.get("batch")}
