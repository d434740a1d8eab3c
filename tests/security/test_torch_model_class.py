"""A state-dict bundle names the class to rebuild (``model_class``); importing its module runs that module's
code, so without trust berth imports only a class the caller named or one whose module is already imported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import berth
from berth.errors import TrustError
from berth.manifest import MANIFEST_NAME
from tests.security.conftest import IRIS_X

torch = pytest.importorskip("torch")
CANARY = "tests.security.canary_net"


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # type: ignore[no-any-return]


@pytest.fixture
def naming_the_canary(tmp_path: Path) -> Path:
    """A state-dict bundle saved with this module's Net, its manifest then pointed at the canary module."""
    path = tmp_path / "net"
    berth.save(Net(), path, format="state_dict", sample=IRIS_X.head(5), model_class=f"{__name__}:Net")
    data = json.loads((path / MANIFEST_NAME).read_text())
    data["flavor_options"]["model_class"] = f"{CANARY}:Net"
    (path / MANIFEST_NAME).write_text(json.dumps(data))
    sys.modules.pop(CANARY, None)
    return path


def test_an_unnamed_class_is_not_imported_without_trust(naming_the_canary: Path) -> None:
    with pytest.raises(TrustError, match=f"importing {CANARY} runs that module's code"):
        berth.load(naming_the_canary)
    assert CANARY not in sys.modules


def test_a_class_named_by_the_caller_loads(naming_the_canary: Path) -> None:
    model = berth.load(naming_the_canary, trusted_types=[f"{CANARY}:Net"])
    assert CANARY in sys.modules
    assert model.predict(IRIS_X.head(3)).shape == (3, 3)


def test_trust_loads_it_too(naming_the_canary: Path) -> None:
    assert berth.load(naming_the_canary, trust=True).predict(IRIS_X.head(2)).shape == (2, 3)


def test_a_class_whose_module_is_imported_loads_without_trust(tmp_path: Path) -> None:
    path = tmp_path / "net"
    berth.save(Net(), path, format="state_dict", sample=IRIS_X.head(5), model_class=f"{__name__}:Net")
    assert berth.load(path).predict(IRIS_X.head(2)).shape == (2, 3)


@pytest.mark.parametrize("model_class", ["os:system\n", "a b:C", "mod:Cls:extra", "módulo:Net"])
def test_a_malformed_class_path_is_refused_before_any_import(naming_the_canary: Path, model_class: str) -> None:
    data = json.loads((naming_the_canary / MANIFEST_NAME).read_text())
    data["flavor_options"]["model_class"] = model_class
    (naming_the_canary / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(berth.FlavorError, match="needs model_class="):
        berth.load(naming_the_canary, trust=True)


@pytest.mark.parametrize(("option", "value"), [("batch", 10**12), ("batch", 0), ("input_dtype", "object"),
                                               ("output", "softmax"), ("classes", "ab")])
def test_predictor_options_from_the_manifest_are_checked(tmp_path: Path, option: str, value: object) -> None:
    """A state-dict bundle loads without trust, so its options must not be able to make every predict pad to a
    trillion rows or pick a dtype that is not a number."""
    path = tmp_path / "net"
    berth.save(Net(), path, format="state_dict", sample=IRIS_X.head(5), model_class=f"{__name__}:Net")
    data = json.loads((path / MANIFEST_NAME).read_text())
    data["flavor_options"][option] = value
    (path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(berth.FlavorError, match=f"the bundle's {option}"):
        berth.load(path)
