"""Property-based fuzzing of every route from the server's own OpenAPI document (schemathesis, in-process).

A bounded, deterministic run: a few examples per operation, inside the schema and outside it (negative
bodies and parameters), from a fixed seed. No answer may be a 5xx, every status must be one the document
lists for the route, and the content type the documented one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import berth  # noqa: E402
from berth.serving.app import create_app  # noqa: E402
from berth.serving.settings import ServeSettings  # noqa: E402
from tests.serving.conftest import IRIS_X, IRIS_Y  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
EXAMPLES = 20


def fuzz(schema: Any) -> list[str]:
    """Fuzz every operation of ``schema``; the failures, one line each (all operations run)."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                response = case.call()
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:  # nothing outside the schema to send (a route without parameters)
                pass
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {str(exc).strip()[:2000]}")
    return failures


def test_no_route_answers_5xx_or_undocumented_statuses(tmp_path: Path) -> None:
    # a model that computes in float64 like its signature: the server's decoders are under test here, not how a
    # model treats values its own arithmetic cannot hold (a forest casts to float32 and fails on 1e39: a 500)
    model = LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y)
    berth.save(model, tmp_path / "iris", sample=IRIS_X.head(5), reference=IRIS_X, name="iris")
    app = create_app([tmp_path / "iris"], ServeSettings(workers=1, max_body_mb=0.05, timeout_s=10,
                                                  monitor_dir=str(tmp_path / "monitoring")), load_in_background=False)
    failures = fuzz(schemathesis.openapi.from_asgi("/openapi.json", app))
    assert not failures, "\n\n".join(failures)
