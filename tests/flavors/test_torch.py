from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import berth  # noqa: E402
from berth.errors import FlavorError, IntegrityError, PredictionError, TrustError  # noqa: E402
from berth.flavors.torch import TorchFlavor  # noqa: E402

Iris = tuple[pd.DataFrame, pd.Series]
CLASSES = ["setosa", "versicolor", "virginica"]
FORMATS = ["torchscript", "torch_export", "state_dict"]


class Mlp(torch.nn.Module):
    def __init__(self, hidden: int = 8, outputs: int = 3) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                          torch.nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class VarArgs(Mlp):
    """TorchScript cannot compile ``*inputs``: saving falls back to tracing."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs[0])


class BatchGuard(Mlp):
    """Branches on the batch size, so torch.export cannot keep the batch axis dynamic."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1000:
            return self.layers(x) * 0
        return self.layers(x)


def mlp(cls: type[Mlp] = Mlp, **kwargs: int) -> Mlp:
    torch.manual_seed(0)
    return cls(**kwargs)


def logits(model: torch.nn.Module, features: pd.DataFrame | np.ndarray) -> np.ndarray:
    values = np.asarray(features)
    dtype = torch.int64 if values.dtype.kind in "iu" and isinstance(model, Bag) else torch.float32
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(values, dtype=dtype)).numpy()  # type: ignore[no-any-return]


def options_for(format: str, cls: type[Mlp] = Mlp) -> dict[str, object]:
    if format != "state_dict":
        return {}
    return {"model_class": f"{cls.__module__}:{cls.__qualname__}", "model_kwargs": {"hidden": 8}}


@pytest.mark.parametrize("format", FORMATS)
def test_classifier_round_trip(tmp_path: Path, iris: Iris, format: str) -> None:
    features, _ = iris
    model = mlp().train()  # saved in eval mode whatever mode it is in, and left as it was
    manifest = berth.save(model, tmp_path / format, format=format, sample=features.head(10), classes=CLASSES,
                          **options_for(format))

    assert model.training and all(m.training for m in model.modules())
    assert (manifest.flavor, manifest.format) == ("torch", format)
    assert {"torch", "numpy"} <= set(manifest.libraries)
    assert manifest.flavor_options["classes"] == CLASSES
    assert manifest.signature is not None and manifest.signature.outputs.probabilities

    loaded = berth.load(tmp_path / format, trust=format != "state_dict")
    raw = logits(model, features)
    softmax = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    for request in [features.to_numpy().tolist(), features.to_dict(orient="list"), features]:
        assert list(loaded.predict(request)) == [CLASSES[i] for i in raw.argmax(axis=1)]
        np.testing.assert_allclose(loaded.predict_proba(request), softmax, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("format", "payload"), [("torchscript", "model.pt"), ("torch_export", "model.pt2")])
def test_program_formats_need_trust(tmp_path: Path, iris: Iris, format: str, payload: str) -> None:
    berth.save(mlp(), tmp_path / format, format=format, sample=iris[0].head(5))
    assert [f.path for f in berth.inspect(tmp_path / format).files] == [payload]
    with pytest.raises(TrustError):
        berth.load(tmp_path / format)


def test_raw_outputs_without_classes(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    model = mlp()
    berth.save(model, tmp_path / "raw", sample=features.head(5))
    loaded = berth.load(tmp_path / "raw", trust=True)
    np.testing.assert_allclose(loaded.predict(features), logits(model, features), rtol=1e-5, atol=1e-6)
    assert not loaded.has_proba
    with pytest.raises(PredictionError):
        loaded.predict_proba(features.head(2))


def test_probability_and_binary_outputs(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    softmax = torch.nn.Sequential(mlp(), torch.nn.Softmax(dim=1))
    berth.save(softmax, tmp_path / "soft", sample=features.head(5), classes=CLASSES, output="probabilities")
    loaded = berth.load(tmp_path / "soft", trust=True)
    np.testing.assert_allclose(loaded.predict_proba(features), logits(softmax, features), rtol=1e-5, atol=1e-6)

    binary = mlp(outputs=1)
    berth.save(binary, tmp_path / "binary", sample=features.head(5), classes=["no", "yes"])
    loaded = berth.load(tmp_path / "binary", trust=True)
    positive = 1 / (1 + np.exp(-logits(binary, features)[:, 0]))
    np.testing.assert_allclose(loaded.predict_proba(features)[:, 1], positive, rtol=1e-5, atol=1e-6)
    assert list(loaded.predict(features)) == ["yes" if p > 0.5 else "no" for p in positive]


def test_scripting_falls_back_to_tracing(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    model = mlp(VarArgs)
    with pytest.raises(FlavorError, match="pass sample= to trace"):
        berth.save(model, tmp_path / "no-sample")
    berth.save(model, tmp_path / "traced", sample=features.head(5))
    loaded = berth.load(tmp_path / "traced", trust=True)
    np.testing.assert_allclose(loaded.predict(features), logits(model, features), rtol=1e-5, atol=1e-6)


def test_export_with_a_fixed_batch_runs_row_by_row(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    model = mlp(BatchGuard)
    manifest = berth.save(model, tmp_path / "pinned", format="torch_export", sample=features.head(5))
    assert manifest.flavor_options["batch"] == 1
    loaded = berth.load(tmp_path / "pinned", trust=True)
    np.testing.assert_allclose(loaded.predict(features.head(7)), logits(model, features.head(7)),
                               rtol=1e-5, atol=1e-6)


class Bag(torch.nn.Module):
    """Token ids in, through an embedding: the module refuses floats."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids).mean(dim=1))


def test_input_dtype_follows_what_the_module_takes(tmp_path: Path, iris: Iris) -> None:
    torch.manual_seed(0)
    bag = Bag()
    ids = np.array([[1, 2, 3], [4, 5, 9]], dtype=np.int64)
    manifest = berth.save(bag, tmp_path / "bag", sample=ids)
    assert manifest.flavor_options["input_dtype"] == "int64"
    np.testing.assert_allclose(berth.load(tmp_path / "bag", trust=True).predict(ids), logits(bag, ids))

    counts = (iris[0] * 10).astype("int64")  # integer features for a Linear layer: still float32
    manifest = berth.save(mlp(), tmp_path / "counts", sample=counts.head(5))
    assert manifest.flavor_options["input_dtype"] == "float32"
    np.testing.assert_allclose(berth.load(tmp_path / "counts", trust=True).predict(counts),
                               logits(mlp(), counts), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_script_module_is_saved_as_it_is(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    scripted = torch.jit.script(mlp().eval())
    manifest = berth.save(scripted, tmp_path / "scripted", sample=features.head(5))
    assert manifest.format == "torchscript"
    loaded = berth.load(tmp_path / "scripted", trust=True)
    np.testing.assert_allclose(loaded.predict(features), logits(mlp(), features), rtol=1e-5, atol=1e-6)


def test_state_dict_needs_a_model_class(tmp_path: Path, iris: Iris) -> None:
    sample = iris[0].head(5)
    with pytest.raises(FlavorError, match="needs model_class="):
        berth.save(mlp(), tmp_path / "a", format="state_dict", sample=sample)
    with pytest.raises(FlavorError, match="not a torch.nn.Module subclass"):
        berth.save(mlp(), tmp_path / "b", format="state_dict", sample=sample, model_class="os.path:join")
    with pytest.raises(FlavorError, match="cannot rebuild"):  # weights of another shape
        berth.save(mlp(), tmp_path / "c", format="state_dict", sample=sample,
                   model_class=f"{Mlp.__module__}:Mlp", model_kwargs={"hidden": 5})
    with pytest.raises(FlavorError, match="unknown option"):
        berth.save(mlp(), tmp_path / "d", model_class=f"{Mlp.__module__}:Mlp")  # only for state_dict
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_payload_is_refused(tmp_path: Path, iris: Iris, tamper: Callable[[Path], None]) -> None:
    berth.save(mlp(), tmp_path / "mlp", format="state_dict", sample=iris[0].head(5), **options_for("state_dict"))
    tamper(tmp_path / "mlp" / "weights.pt")
    with pytest.raises(IntegrityError, match="weights.pt"):
        berth.load(tmp_path / "mlp")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_detection() -> None:
    flavor = TorchFlavor()
    assert flavor.handles(mlp()) and flavor.handles(torch.jit.script(mlp()))
    assert not flavor.handles(object())
    assert flavor.unsafe_formats == {"torchscript", "torch_export"}


def test_importing_the_flavor_imports_no_framework(
        frameworks_imported: Callable[[str, tuple[str, ...]], list[str]]) -> None:
    assert frameworks_imported("berth.flavors.torch", ("torch",)) == []
