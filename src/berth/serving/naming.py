"""Naming served models on the command line: ``NAME=URI`` serves the model at URI under NAME.

``berth serve a=models:/iris/1 b=./other-bundle`` serves two models as ``a`` and ``b`` (their routes are
``/models/a/predict``, ``/v2/models/a/infer``, ...); a plain URI keeps the name in its manifest. Text before the
first ``=`` is a name when it has no ``/`` and the whole text is not an existing path (so ``./runs/dt=2026/model``
and ``s3://bucket/k=v`` stay URIs); it must follow the one model-name rule (:mod:`berth.names`).
"""

from __future__ import annotations

import os

from berth.names import check_model_name


def split_named(text: str) -> tuple[str | None, str]:
    """``(name, uri)`` of ``NAME=URI``; ``(None, text)`` for a plain URI."""
    prefix, equals, uri = text.partition("=")
    if not equals or "/" in prefix or ":" in prefix or os.path.exists(text):
        return None, text
    check_model_name(prefix, text)
    if not uri:
        from berth.errors import UsageError

        raise UsageError(f"{text!r} names a model but gives no URI: use NAME=URI")
    return prefix, uri
