"""Every protocol answers identically with and without the compiled twin, probabilities included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.compile.conftest import IRIS_X
from tests.serving.conftest import make_client

ROWS = IRIS_X.iloc[[0, 1, 50, 60, 100, 120, 149]].to_numpy().tolist()
COLUMNS = list(IRIS_X.columns)


def requests() -> list[tuple[str, dict[str, Any]]]:
    records = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    return [
        ("/predict", {"instances": ROWS}),
        ("/predict", {"instances": records, "probabilities": True}),
        ("/invocations", {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}),
        ("/invocations", {"instances": ROWS}),
        ("/v1/models/iris:predict", {"instances": ROWS}),
        ("/v2/models/iris/infer", {"inputs": [{"name": "input-0", "shape": [len(ROWS), 4], "datatype": "FP64",
                                                "data": [v for row in ROWS for v in row]}]}),
        ("/v2/models/iris/infer", {"inputs": [{"name": "input-0", "shape": [len(ROWS), 4], "datatype": "FP64",
                                                "data": [v for row in ROWS for v in row]}],
                                    "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}),
        ("/predict", {"instances": [[1e6, -1e6, 0.0, 3.0]], "probabilities": True}),  # far out of range
        ("/predict", {"instances": [["x", 1, 2, 3]]}),  # validation answers alike
    ]


def answers(bundle: Path, compiled: bool) -> list[tuple[int, Any]]:
    with make_client([bundle], compiled=compiled, log_predictions=False) as client:
        ready = client.get("/health/ready").json()
        assert ready["ready"], ready
        return [(r.status_code, r.json()) for r in (client.post(path, json=body) for path, body in requests())]


def close(a: Any, b: Any) -> bool:
    """Equal, floats within 1e-5 (the proof's tolerance): the JSON of two float64 computations."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-5
    return bool(a == b)


def test_every_route_answers_alike_with_and_without_the_twin(iris_twin_bundle: Path) -> None:
    with_twin, without = answers(iris_twin_bundle, True), answers(iris_twin_bundle, False)
    assert [status for status, _ in with_twin] == [status for status, _ in without]
    assert [s for s, _ in with_twin][:-1] == [200] * (len(with_twin) - 1) and with_twin[-1][0] == 422
    for (_, a), (_, b), (path, _) in zip(with_twin, without, requests(), strict=True):
        a, b = strip_versions(a), strip_versions(b)
        assert close(a, b), (path, a, b)
    assert "probabilities" in with_twin[1][1]


def strip_versions(body: Any) -> Any:
    """Drop what names the serving process rather than the answer (request ids)."""
    if isinstance(body, dict):
        return {k: strip_versions(v) for k, v in body.items() if k not in ("id",)}
    return body


def test_the_server_says_which_runtime_predicts(iris_twin_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="berth.serve"), make_client([iris_twin_bundle]) as client:
        slot = client.app.state.plane.slots["iris"]  # type: ignore[attr-defined]
        assert slot.runner.model.compiled
    assert "compiled twin: onnxruntime (proof: " in caplog.text
    with caplog.at_level(logging.INFO, logger="berth.serve"), \
            make_client([iris_twin_bundle], compiled=False) as client:
        assert not client.app.state.plane.slots["iris"].runner.model.compiled  # type: ignore[attr-defined]
    assert "original sklearn model; compiled twin: onnxruntime" in caplog.text


def test_grpc_model_infer_answers_alike(iris_twin_bundle: Path) -> None:
    grpcclient = pytest.importorskip("tritonclient.grpc")
    from support.ports import free_port

    results = []
    for compiled in (True, False):
        port = free_port()
        with make_client([iris_twin_bundle], grpc_port=port, compiled=compiled, log_predictions=False):
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
            tensor = grpcclient.InferInput("input-0", [len(ROWS), 4], "FP64")
            tensor.set_data_from_numpy(np.asarray(ROWS, dtype=np.float64))
            result = client.infer("iris", [tensor], outputs=[grpcclient.InferRequestedOutput("predict"),
                                                             grpcclient.InferRequestedOutput("predict_proba")])
            results.append((result.as_numpy("predict"), result.as_numpy("predict_proba")))
            client.close()
    (labels, proba), (labels_original, proba_original) = results
    assert labels.dtype == labels_original.dtype and labels.tolist() == labels_original.tolist()
    np.testing.assert_allclose(proba, proba_original, rtol=0, atol=1e-5)
