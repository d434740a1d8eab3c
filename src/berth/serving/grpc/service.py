"""``inference.GRPCInferenceService`` on the server's own event loop, data plane, metrics and prediction log.

The gRPC server (``grpc.aio``) is started by the HTTP app's lifespan, in the same event loop, so a gRPC request
takes exactly the path of ``POST /v2/models/NAME/infer``: the same model slot (pinned to one version), the same
decoding into a :class:`~berth.serving.protocols.v2.InferCall`, the same validation and batcher, the same
``berth_requests_total`` / latency metrics (route ``grpc:ModelInfer``, status as the HTTP status the same error
gets) and the same prediction log. With ``--workers N`` every worker starts its own gRPC server on the same port
(``SO_REUSEPORT``, as for HTTP). Inputs come as ``raw_input_contents`` or typed ``contents``; outputs always go
back as ``raw_output_contents``, as Triton does.

Errors carry the gRPC code matching the HTTP status (400/422 INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE,
504 DEADLINE_EXCEEDED, ...) and berth's message. With API keys, calls other than the health calls need
``authorization: Bearer KEY`` metadata (all calls with ``auth_all``).
"""

from __future__ import annotations

import logging
import secrets
import time
import types
from typing import Any

import grpc

from berth.errors import ModelNotFoundError, RequestError, UnauthorizedError, public_error
from berth.serving.grpc import inference_pb2 as pb
from berth.serving.grpc import inference_pb2_grpc as pb_grpc
from berth.serving.protocols import binary, v2
from berth.serving.recording import REQUEST_ID_HEADER, new_request_id
from berth.serving.settings import ServeSettings
from berth.serving.slot import ROUTE_KEY_HEADER
from berth.version import version

log = logging.getLogger("berth.serve")

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND, 406: grpc.StatusCode.INVALID_ARGUMENT,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED, 415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT, 503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
CONTENTS = {  # datatype -> the field of InferTensorContents holding its values
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
OPEN_METHODS = {"ServerLive", "ServerReady", "ServerMetadata"}


class _Failed(Exception):
    """A call ends with this gRPC status (raised inside the service, turned into ``context.abort``)."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status


def failure(exc: BaseException) -> _Failed:
    """The gRPC status of an exception, as the HTTP routes would answer it (:func:`berth.errors.public_error`:
    a model's failure or a bug is a 500 whose message carries only an error id, the log has the rest)."""
    if isinstance(exc, _Failed):
        return exc
    error = public_error(exc)
    return _Failed(STATUS_CODES.get(error.status_code, grpc.StatusCode.INTERNAL), error.message, error.status_code)


def request_body(request: Any) -> tuple[dict[str, Any], list[bytes | None]]:
    """A ``ModelInferRequest`` as the JSON body of the REST route (typed contents as ``data``), and its raw
    contents; both then go through :func:`berth.serving.protocols.v2.decode` like an HTTP request."""
    raws: list[bytes | None] = list(request.raw_input_contents)
    if raws and len(raws) != len(request.inputs):
        raise RequestError(f"raw_input_contents has {len(raws)} entries for {len(request.inputs)} inputs",
                           [{"loc": ["raw_input_contents"], "msg": "one entry per input expected"}])
    inputs = []
    for index, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if not raws:
            field = CONTENTS.get(tensor.datatype)
            if field is None:
                if tensor.datatype in v2.DATATYPES:  # FP16 has no typed field
                    raise RequestError(f"input '{tensor.name}': {tensor.datatype} needs raw_input_contents",
                                       [{"loc": ["inputs", index, "contents"], "msg": "send raw contents"}])
                item["data"] = []  # the datatype is refused by v2.decode with its usual message
            else:
                values = list(getattr(tensor.contents, field))
                item["data"] = [binary.bytes_to_text(v) for v in values] if field == "bytes_contents" else values
        inputs.append(item)
    body: dict[str, Any] = {"inputs": inputs}
    if request.outputs:
        body["outputs"] = [{"name": output.name} for output in request.outputs]
    if request.id:
        body["id"] = request.id
    return body, raws if raws else [None] * len(inputs)


def metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The call's metadata as text (binary ``-bin`` values are not berth's business)."""
    return {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: Any, metrics: Any, recorder: Any, settings: ServeSettings) -> None:
        self.plane = plane
        self.metrics = metrics
        self.recorder = recorder
        self.keys = [key.encode() for key in settings.api_keys]
        self.auth_all = settings.auth_all

    # ------------------------------------------------------------------ helpers

    async def _check_key(self, method: str, context: grpc.aio.ServicerContext) -> None:
        if not self.keys or (method in OPEN_METHODS and not self.auth_all):
            return
        sent = metadata(context).get("authorization", "")
        scheme, _, token = sent.partition(" ")
        matched = False
        for key in self.keys:  # compare against every key: timing says nothing about which matched
            matched |= secrets.compare_digest(token.strip().encode(), key)
        if scheme.lower() != "bearer" or not matched:
            error = UnauthorizedError("missing or invalid API key: send metadata authorization: Bearer KEY")
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, error.message)

    def _slot(self, name: str, version: str) -> Any:
        slot = self.plane.slot(name or None)
        if version and version != slot.runner.version:
            raise ModelNotFoundError(f"model {slot.name!r} has no version {version!r}; serving {slot.runner.version}")
        return slot

    async def _answer(self, method: str, context: grpc.aio.ServicerContext, make: Any) -> Any:
        await self._check_key(method, context)
        try:
            return make()
        except Exception as exc:
            failed = failure(exc)
            await context.abort(failed.code, failed.message)

    # ------------------------------------------------------------------ health and metadata

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("ServerLive", context, lambda: pb.ServerLiveResponse(live=True))

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("ServerReady", context, lambda: pb.ServerReadyResponse(ready=self.plane.ready))

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("ServerMetadata", context, lambda: pb.ServerMetadataResponse(
            name="berth", version=version(), extensions=v2.EXTENSIONS))

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("ModelReady", context, lambda: pb.ModelReadyResponse(
            ready=self._slot(request.name, request.version).ready))

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def make() -> Any:
            slot = self._slot(request.name, request.version)
            runner = slot.runner
            meta = v2.metadata(runner.signature, slot.name, runner.version, runner.model.manifest.flavor)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                inputs=[tensor(**t) for t in meta["inputs"]], outputs=[tensor(**t) for t in meta["outputs"]])

        return await self._answer("ModelMetadata", context, make)

    # ------------------------------------------------------------------ inference

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check_key("ModelInfer", context)
        started = time.perf_counter()
        sent_id = metadata(context).get(REQUEST_ID_HEADER)
        sane = sent_id is not None and 0 < len(sent_id) <= 200 and sent_id.isascii() and sent_id.isprintable() \
            and " " not in sent_id  # as recording.Recorder.request_id takes an HTTP client's id
        request_id = sent_id if sent_id is not None and sane else new_request_id()
        model, version, status = "", "", 200  # the model label only once the name is known: bounded metrics
        call_state = types.SimpleNamespace(prediction=None)  # what the HTTP handlers leave on request.state
        self.metrics.in_flight.inc()
        slot = None
        failed: _Failed | None = None
        response = None
        try:
            # as the HTTP routes do: a canary takes its share (sticky by x-berth-route-key), a version asked for
            # is the baseline's or the canary's; gRPC calls are not copied to a shadow, so its reservation is
            # given back at once (an unreleased one would keep a retired candidate from ever closing)
            wanted = request.model_version or None
            slot = self.plane.slot(request.model_name or None).pin(metadata(context).get(ROUTE_KEY_HEADER), wanted)
            if slot.shadow is not None:
                slot.shadow.active -= 1
            model, version = slot.name, slot.runner.version
            if wanted is not None and wanted != version:
                raise ModelNotFoundError(f"model {model!r} has no version {wanted!r}; serving {version}")
            runner = slot.runner
            body, raws = request_body(request)
            call = v2.decode(body, runner.signature, raws)
            result = await self.plane.predict(runner, call.data, call.probabilities)
            call_state.prediction = (runner, call.data, result)
            response = pb.ModelInferResponse(model_name=model, model_version=version, id=call.request_id)
            for name, datatype, array in v2.output_tensors(result, call.requested):
                response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
                response.raw_output_contents.append(binary.array_to_raw(array, datatype))
            context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id), ("x-berth-model", model),
                                           ("x-berth-model-version", version)))
        except Exception as exc:
            failed = failure(exc)
            status = failed.http_status
        finally:
            self.metrics.in_flight.dec()
            if slot is not None:
                slot.release()
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels("grpc:ModelInfer", model, version, str(status)).inc()
        self.metrics.latency.labels("grpc:ModelInfer", model).observe(elapsed)
        if failed is not None:
            await context.abort(failed.code, failed.message)
        self.recorder.record(types.SimpleNamespace(state=call_state), request_id, model, elapsed)
        return response


async def start(plane: Any, metrics: Any, recorder: Any, settings: ServeSettings) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server on ``settings.grpc_port`` in the running event loop; the port it listens on."""
    from berth.errors import UsageError

    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", settings.max_body_bytes),  # the body limit, as for HTTP
        ("grpc.max_send_message_length", -1),
        # workers share the port, like their HTTP sockets; a lone server must not share it with another one
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(plane, metrics, recorder, settings), server)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.grpc_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise UsageError(f"cannot listen for gRPC on {address}: {exc}") from None
    if port == 0:
        raise UsageError(f"cannot listen for gRPC on {address} (port taken?)")
    await server.start()
    log.info("gRPC (Open Inference Protocol) listening on %s:%s", settings.host, port)
    return server, port
