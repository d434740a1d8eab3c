"""OpenAPI request and response schemas typed from each model's signature, with examples from its sample.

So ``/docs`` shows the real feature names and types, and its "Try it out" sends a prediction that works.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from berth.signature import ColumnSpec, Signature

JSON_TYPES = {"bool": {"type": "boolean"}, "string": {"type": "string"},
              "datetime": {"type": "string", "format": "date-time"}}


def column_schema(column: ColumnSpec) -> dict[str, Any]:
    if column.dtype in JSON_TYPES:
        schema = dict(JSON_TYPES[column.dtype])
    else:
        schema = {"type": "integer" if column.is_integer else "number"}
    return {**schema, "nullable": True} if column.nullable else schema


def row_schemas(signature: Signature) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a row as a list of values, a row as a record) for table models; a single value for column models."""
    if signature.layout == "tensor":
        any_array = {"type": "array", "items": {}}
        return any_array, any_array
    columns = signature.columns
    as_list = {"type": "array", "minItems": len(columns), "maxItems": len(columns),
               "items": {"oneOf": [column_schema(c) for c in columns]} if len(columns) > 1 else column_schema(
                   columns[0]),
               "description": "values in this order: " + ", ".join(signature.names)}
    as_record = {"type": "object", "required": signature.names, "additionalProperties": False,
                 "properties": {c.name: column_schema(c) for c in columns}}
    return as_list, as_record


def simple_request(signature: Signature) -> dict[str, Any]:
    as_list, as_record = row_schemas(signature)
    example = signature.example
    first = example[0] if example else None
    schema = {
        "type": "object",
        "properties": {
            "features": {"oneOf": [as_list, as_record], "description": "one row"},
            "instances": {"type": "array", "items": {"oneOf": [as_list, as_record]}, "minItems": 1},
            "inputs": {"type": "object", "description": "columns by name",
                       "properties": {c.name: {"type": "array", "items": column_schema(c)}
                                      for c in signature.columns}},
            "probabilities": {"type": "boolean", "default": False},
        },
    }
    examples = {"instances": {"summary": "records", "value": {"instances": example}}}
    if isinstance(first, dict):
        examples["features"] = {"summary": "one row", "value": {"features": list(first.values())}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema,
                                                                                "examples": examples}}}}


def simple_response(signature: Signature) -> dict[str, Any]:
    out = signature.outputs
    item: dict[str, Any] = {"type": "number"} if out.dtype.startswith(("float", "int", "uint")) else {}
    return {"type": "object", "properties": {
        "predictions": {"type": "array", "items": item},
        "model": {"type": "string"}, "version": {"type": "string"},
        "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "classes": {"type": "array", "items": {}, "example": out.classes},
    }}


def mlflow_request(signature: Signature) -> dict[str, Any]:
    as_list, as_record = row_schemas(signature)
    split = {"type": "object", "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                              "data": {"type": "array", "items": as_list}}}
    example_rows = [list(r.values()) for r in signature.example if isinstance(r, dict)]
    schema = {"type": "object", "properties": {
        "dataframe_split": split,
        "dataframe_records": {"type": "array", "items": as_record},
        "instances": {"type": "array", "items": {"oneOf": [as_list, as_record]}},
        "inputs": {},
        "params": {"type": "object"},
    }}
    examples = {"dataframe_split": {"value": {"dataframe_split": {"columns": signature.names, "data": example_rows}}},
                "dataframe_records": {"value": {"dataframe_records": signature.example}}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema, "examples": examples},
        "text/csv": {"schema": {"type": "string"}},
    }}}


# ------------------------------------------------------------------------- what the routes answer besides 200

ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {}}, "msg": {"type": "string"}}}}}}}}
V2_ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
ERROR_MEANINGS = {
    400: "Malformed request: not JSON, or not the shape the protocol expects",
    401: "Missing or invalid API key",
    404: "No model of that name (or version) is served",
    408: "The request body did not arrive in time",
    413: "The request body is larger than the limit",
    415: "Unsupported Content-Type",
    422: "The input does not match the model's signature",
    500: "The model failed on this input (the log holds the error id)",
    503: "Models are loading or not ready",
    504: "No answer within the server's timeout",
}
PREDICTION_ERRORS = (400, 404, 408, 413, 415, 422, 500, 503, 504)
READ_ERRORS = (404, 503)
BODY_ERRORS = (400, 408, 413, 415, 422)


def error_responses(codes: tuple[int, ...], *, v2: bool = False, auth: bool = False) -> dict[int | str, Any]:
    """OpenAPI ``responses`` entries for the errors a route gives, in berth's (or the V2 protocol's) shape."""
    schema = V2_ERROR_SCHEMA if v2 else ERROR_SCHEMA
    chosen = sorted({*codes, 401} if auth else set(codes))
    return {code: {"description": ERROR_MEANINGS[code], "content": {"application/json": {"schema": schema}}}
            for code in chosen}


def path_parameters(path: str) -> list[dict[str, Any]]:
    """The ``{name}`` parameters of ``path`` (the handlers read them from the request, so FastAPI cannot)."""
    described = {"name": "A served model's name", "version": "The served version of that model"}
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [{"name": name, "in": "path", "required": True, "description": described.get(name, name),
             "schema": {"type": "string"}} for name in names]


def probe_responses(key: str) -> dict[int | str, Any]:
    schema = {"type": "object", "properties": {key: {}}}
    return {200: {"description": "Yes", "content": {"application/json": {"schema": schema}}},
            503: {"description": "Not (yet)", "content": {"application/json": {"schema": schema}}}}


METRICS_RESPONSES: dict[int | str, Any] = {200: {
    "description": "Prometheus text exposition format",
    "content": {"text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}}}}
PROBES = {"/health/live": "live", "/health/ready": "ready", "/ping": "status", "/v2/health/live": "live",
          "/v2/health/ready": "ready"}


def status_route(path: str) -> dict[str, Any]:
    """``add_api_route`` arguments documenting a status route: probes answer 200 or 503, /metrics is text."""
    if path == "/metrics":
        return {"response_class": Response, "responses": METRICS_RESPONSES}
    if path in PROBES:
        return {"responses": probe_responses(PROBES[path])}
    return {}
