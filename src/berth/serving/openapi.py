"""OpenAPI request and response schemas typed from each model's signature, with examples from its sample.

So ``/docs`` shows the real feature names and types, and its "Try it out" sends a prediction that works. The
schemas are plain JSON Schema (2020-12, as OpenAPI 3.1 uses): alternatives are ``anyOf`` (never ``oneOf`` over
alternatives a value can match twice, such as two number columns), a nullable column is ``"type": [T, "null"]``,
and every example validates against its schema (tested with ``jsonschema``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from berth.signature import ColumnSpec, Signature

JSON_TYPES = {"bool": {"type": "boolean"}, "string": {"type": "string"},
              "datetime": {"type": "string", "format": "date-time"}}


def column_schema(column: ColumnSpec) -> dict[str, Any]:
    if column.dtype in JSON_TYPES:
        schema = dict(JSON_TYPES[column.dtype])
    else:
        schema = {"type": "integer" if column.is_integer else "number"}
    return {**schema, "type": [schema["type"], "null"]} if column.nullable else schema


def any_of(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema for values matching any of ``schemas``; identical alternatives are merged."""
    unique: list[dict[str, Any]] = []
    for schema in schemas:
        if schema not in unique:
            unique.append(schema)
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def row_schemas(signature: Signature) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a row as a list of values, a row as a record) for table models; a single value for column models."""
    if signature.layout == "tensor":
        any_array = {"type": "array", "items": {}}
        return any_array, any_array
    columns = signature.columns
    as_list = {"type": "array", "minItems": len(columns), "maxItems": len(columns),
               "items": any_of([column_schema(c) for c in columns]),
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
            "features": {"anyOf": [as_list, as_record], "description": "one row"},
            "instances": {"type": "array", "items": {"anyOf": [as_list, as_record]}, "minItems": 1},
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
        "instances": {"type": "array", "items": {"anyOf": [as_list, as_record]}},
        "inputs": {},
        "params": {"type": "object"},
    }}
    examples = {"dataframe_split": {"value": {"dataframe_split": {"columns": signature.names, "data": example_rows}}},
                "dataframe_records": {"value": {"dataframe_records": signature.example}}}
    csv_rows = "".join(",".join(_csv_value(v) for v in row) + "\n" for row in example_rows)
    jsonlines = "".join(orjson.dumps(row).decode() + "\n" for row in example_rows)
    text = {"type": "string"}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema, "examples": examples},
        "text/csv": {"schema": {**text, "description": "one row per line; a first line naming exactly the "
                                "columns is a header, otherwise every line is data (SageMaker sends no header)"},
                     "examples": {"headerless": {"value": csv_rows},
                                  "with header": {"value": ",".join(signature.names) + "\n" + csv_rows}}},
        "application/jsonlines": {"schema": {**text, "description": "one row per line: a JSON array of values, "
                                             "a record, or {\"features\": [...]}"},
                                  "examples": {"rows": {"value": jsonlines}}},
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


def _csv_value(value: Any) -> str:
    text = "" if value is None else str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def v1_request(signature: Signature) -> dict[str, Any]:
    """KServe V1: ``{"instances": [...]}`` (or ``inputs``) of rows or records."""
    as_list, as_record = row_schemas(signature)
    instances = {"type": "array", "minItems": 1, "items": {"anyOf": [as_list, as_record]}}
    schema = {"type": "object", "properties": {"instances": instances, "inputs": instances,
                                               "parameters": {"type": "object"}}}
    rows = [list(r.values()) for r in signature.example if isinstance(r, dict)] or signature.example
    examples = {"rows": {"value": {"instances": rows}}, "records": {"value": {"instances": signature.example}}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema,
                                                                                "examples": examples}}}}


def v2_request(signature: Signature) -> dict[str, Any]:
    """The Open Inference Protocol's inference request (JSON), with an example in the model's input tensors."""
    from berth.serving.protocols import v2

    tensor = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"enum": list(v2.DATATYPES)}, "data": {"type": "array"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}}}}
    output = {"type": "object", "required": ["name"], "properties": {
        "name": {"enum": list(v2.OUTPUTS)},
        "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}}
    schema = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "inputs": {"type": "array", "minItems": 1, "items": tensor},
        "outputs": {"type": "array", "items": output},
        "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}}}}
    rows = [list(r.values()) for r in signature.example if isinstance(r, dict)]
    inputs = v2.metadata(signature, "", "", "")["inputs"]
    if rows and len(inputs) == 1:
        tensors = [{**inputs[0], "shape": [len(rows), len(rows[0])], "data": rows}]
    elif rows:
        tensors = [{**spec, "shape": [len(rows)], "data": [row[i] for row in rows]} for i, spec in enumerate(inputs)]
    else:
        example = signature.example
        tensors = [{**inputs[0], "shape": [len(example)], "data": example}] if signature.layout == "column" else []
    examples = {"tensors": {"value": {"inputs": tensors, "outputs": [{"name": "predict"}]}}} if tensors else {}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema,
                                                                                "examples": examples}}}}


def model_paths(name: str, signature: Signature, *, only_model: bool) -> dict[str, dict[str, Any]]:
    """The typed paths of one served model (and, when it is the only one, of the routes without a name)."""
    responses = {"200": {"description": "Predictions", "content": {"application/json": {
        "schema": simple_response(signature)}}}}
    simple = {"summary": f"Predict with {name}", "tags": ["simple"], **simple_request(signature),
              "responses": responses}
    mlflow = {"summary": f"MLflow / SageMaker scoring with {name}", "tags": ["mlflow"], **mlflow_request(signature),
              "responses": {"200": {"description": "Predictions in the format Accept asks for "
                                                   "(application/json, text/csv, application/jsonlines)"},
                            "406": {"description": "Accept names no format berth answers in"}}}
    v1 = {"summary": f"Predict with {name} (KServe V1)", "tags": ["kserve-v1"], **v1_request(signature),
          "responses": {"200": {"description": "{\"predictions\": [...]}"}}}
    v2 = {"summary": f"Inference with {name}", "tags": ["v2"], **v2_request(signature),
          "responses": {"200": {"description": "Output tensors (JSON, or binary with Inference-Header-Content-"
                                               "Length when asked)"}}}
    paths = {f"/models/{name}/predict": {"post": simple}, f"/models/{name}/invocations": {"post": mlflow},
             f"/v1/models/{name}:predict": {"post": v1}, f"/v2/models/{name}/infer": {"post": v2}}
    if only_model:
        paths["/predict"] = {"post": {**simple, "summary": "Predict"}}
        paths["/invocations"] = {"post": {**mlflow, "summary": "MLflow / SageMaker scoring"}}
    return paths


TEMPLATES = ("/models/{name}/predict", "/models/{name}/invocations", "/v1/models/{name}:predict",
             "/v2/models/{name}/infer")  # replaced by one typed path per model
