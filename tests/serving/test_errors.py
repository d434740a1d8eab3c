"""One renderer for every error a client sees: the server's routes, its middleware and the dashboard."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from berth import errors
from berth.errors import InternalError, PredictionError, SignatureError, render_error

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_a_berth_error_renders_as_it_is_and_stays_unchanged() -> None:
    error = SignatureError("bad row", [{"loc": ["body", "instances", 3], "msg": "not a number"}])
    assert render_error(error) == (422, {"error": {"code": "invalid_input", "message": "bad row",
                                                   "details": [{"loc": ["body", "instances", 3],
                                                                "msg": "not a number"}]}})
    assert render_error(error, v2=True) == (422, {"error": "bad row"})


@pytest.mark.parametrize(("exc", "code"), [(PredictionError("model raised: secret path /x"), "prediction_failed"),
                                           (RuntimeError("a bug with a secret"), "internal_error")])
def test_failures_render_as_500_with_an_error_id_and_the_original_is_not_changed(
        exc: Exception, code: str, caplog: pytest.LogCaptureFixture) -> None:
    before = (type(exc), str(exc), getattr(exc, "code", None))
    with caplog.at_level(logging.ERROR, logger="berth"):
        status, body = render_error(exc)
    assert status == 500 and body["error"]["code"] == code
    assert "secret" not in str(body)
    error_id = body["error"]["message"].split()[2].rstrip(":")
    assert body["error"]["details"] == [{"loc": [], "msg": f"error id {error_id}"}]
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)
    assert (type(exc), str(exc), getattr(exc, "code", None)) == before
    assert PredictionError.code == "prediction_failed" and InternalError.code == "internal_error"
    assert render_error(exc, v2=True)[1]["error"].startswith("internal error ")  # a fresh id each time


def test_the_dashboard_answers_with_the_same_renderer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from berth.monitoring import dashboard
    from berth.monitoring.store import Store

    client = TestClient(dashboard.create_app(Store(tmp_path)), raise_server_exceptions=False)
    bad_window = client.get("/dashboard/api/report", params={"model": "iris", "window": "soon"})
    assert bad_window.status_code == 400
    assert set(bad_window.json()["error"]) == {"code", "message", "details"}

    def broken(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dashboard, "dashboard_report", broken)
    failed = client.get("/dashboard/api/report", params={"model": "iris", "window": "1h"})
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "internal_error"
    assert "disk on fire" not in failed.text


def test_every_error_class_carries_its_own_code() -> None:
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, errors.BerthError)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "two error classes share a code"
