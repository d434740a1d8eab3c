"""The one exception tree of berth.

Every error a user can cause is a :class:`BerthError`. The class carries what the transports need: the HTTP
status a server answers with, a short machine-readable ``code``, and the CLI exit code. ``details`` holds
precise locations (``{"loc": [...], "msg": ...}``), e.g. the row and field of a bad value.

:func:`render_error` is the one place an exception becomes what an HTTP client sees (the server and the
dashboard both answer with it).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

log = logging.getLogger("berth.errors")


class BerthWarning(UserWarning):
    """Something works but deserves attention (e.g. a minor library version differs from the bundle's)."""


class BerthError(Exception):
    """Base of every error berth raises on purpose."""

    status_code: int = 500
    code: str = "berth_error"
    exit_code: int = 1

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = details or []

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class UsageError(BerthError):
    """The caller asked for something that cannot be done as asked (bad option, bad combination)."""

    status_code = 400
    code = "usage_error"
    exit_code = 2


class StorageError(BerthError):
    """A path or URL cannot be read or written."""

    status_code = 404
    code = "storage_error"


class BundleError(BerthError):
    """A bundle is missing, malformed, or cannot be written."""

    status_code = 400
    code = "bundle_error"


class IntegrityError(BundleError):
    """A payload file does not match the sha256 or size recorded in the manifest."""

    code = "integrity_error"


class TrustError(BundleError):
    """Loading would run code from the payload (pickle) or construct untrusted types, and trust was not given."""

    status_code = 403
    code = "untrusted_payload"


class EnvironmentMismatchError(BundleError):
    """The installed Python or library versions differ from the bundle's by a major version, or are missing."""

    code = "environment_mismatch"


class FlavorError(BerthError):
    """No flavor handles this model, or a flavor failed to save or load it."""

    status_code = 400
    code = "flavor_error"


class SignatureError(BerthError):
    """Input does not match the model's signature. ``details`` names each row and field at fault."""

    status_code = 422
    code = "invalid_input"


class PredictionError(BerthError):
    """The model itself raised while predicting."""

    status_code = 500
    code = "prediction_failed"


class InternalError(BerthError):
    """Something failed that berth did not foresee (a bug): the client is told an error id, the log has the rest."""

    status_code = 500
    code = "internal_error"


class RequestError(BerthError):
    """A request to the server is malformed: not JSON, not the shape a protocol expects."""

    status_code = 400
    code = "bad_request"


class UnauthorizedError(RequestError):
    status_code = 401
    code = "unauthorized"


class ModelNotFoundError(RequestError):
    status_code = 404
    code = "model_not_found"


class PayloadTooLargeError(RequestError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(RequestError):
    status_code = 415
    code = "unsupported_media_type"


class NotReadyError(BerthError):
    status_code = 503
    code = "not_ready"


class RequestTimeoutError(BerthError):
    status_code = 504
    code = "timeout"


class RegistryError(BerthError):
    """The model registry cannot do what was asked: its database or artifact store refuses, or the input is bad."""

    status_code = 400
    code = "registry_error"


class RegistryNotFoundError(RegistryError):
    """No registered model, version or alias of that name."""

    status_code = 404
    code = "registry_not_found"


class RegistryConflictError(RegistryError):
    """The change would break the registry's rules (delete a version an alias points at, roll back past the start)."""

    status_code = 409
    code = "registry_conflict"


class RegistrySchemaError(RegistryError):
    """The database is not a berth registry, or was made by a newer berth than this one."""

    status_code = 500
    code = "registry_schema"


def public_error(exc: BaseException) -> BerthError:
    """What a client may be told about ``exc``: a :class:`BerthError` as it is; a model's own failure or anything
    unforeseen as a new 500 error that carries only an error id, logged here with the traceback."""
    if isinstance(exc, BerthError) and not isinstance(exc, PredictionError):
        return exc
    error_id = secrets.token_hex(6)
    log.error("error %s: %s", error_id, exc, exc_info=exc)
    details = [{"loc": [], "msg": f"error id {error_id}"}]
    if isinstance(exc, PredictionError):
        return PredictionError(f"internal error {error_id}: the model failed on this input", details)
    return InternalError(f"internal error {error_id}", details)


def render_error(exc: BaseException, *, v2: bool = False) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` of the answer to ``exc``: ``{"error": {"code", "message", "details"}}``, or the Open
    Inference Protocol's ``{"error": "message"}`` when ``v2``. Renders without changing ``exc``."""
    error = public_error(exc)
    return error.status_code, ({"error": error.message} if v2 else {"error": error.to_dict()})
