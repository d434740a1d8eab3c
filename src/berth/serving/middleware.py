"""Pure ASGI middleware: request body size limit and deadline, and API-key authentication."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth.errors import BerthError, BodyTimeoutError, PayloadTooLargeError, UnauthorizedError, render_error
from berth.serving.codec import dumps

HEALTH_PREFIXES = ("/health", "/ping", "/v2/health")
DOCS_PREFIXES = ("/docs", "/openapi.json", "/redoc")
METRICS_PREFIXES = ("/metrics",)


async def _send_error(send: Send, error: BerthError, *, v2: bool, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    status, payload = render_error(error, v2=v2)
    body = dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_v2(scope: Scope) -> bool:
    return str(scope.get("path", "")).startswith(("/v2", "/v1/"))  # KServe's {"error": "..."} shape


class BodyLimitMiddleware:
    """413 for a body over the limit (from Content-Length up front, or while streaming a chunked body), and 408
    for a body that has not fully arrived ``timeout_s`` after the headers (a slowly trickling client).

    Both are raised from ``receive`` as :class:`BerthError` subclasses, so whichever handler reads the body
    renders them as 413/408; one that escapes the app is rendered here (if the response has not started).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_error(send, self._too_large(), v2=_is_v2(scope))
                return
        received = 0
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout_s is None else loop.time() + self.timeout_s
        body_done = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done or deadline is None:
                message = await receive()
            else:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise BodyTimeoutError(f"the request body did not arrive within {self.timeout_s:g} s "
                                           "(--body-timeout-s)", [{"loc": ["body"], "msg": "too slow"}]) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
                body_done = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except (PayloadTooLargeError, BodyTimeoutError) as error:
            if started:
                raise
            await _send_error(send, error, v2=_is_v2(scope), extra=[(b"connection", b"close")])

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"request body is larger than {self.max_bytes} bytes (--max-body-mb)",
                                    [{"loc": ["body"], "msg": f"larger than {self.max_bytes} bytes"}])


class ApiKeyMiddleware:
    """``Authorization: Bearer KEY`` on protected routes; keys compared in constant time.

    Health probes stay open (orchestrators probe without keys); so do ``/docs``, ``/openapi.json`` and
    ``/metrics`` unless ``protect_docs`` / ``protect_metrics``; ``protect_all`` closes everything.
    """

    def __init__(self, app: ASGIApp, keys: Iterable[str], protect_all: bool = False, *,
                 protect_docs: bool = False, protect_metrics: bool = False) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]
        if not self.keys or not all(self.keys):
            raise ValueError("API-key authentication needs non-empty keys")
        self.protect_all = protect_all
        open_prefixes = list(HEALTH_PREFIXES)
        if not protect_docs:
            open_prefixes += DOCS_PREFIXES
        if not protect_metrics:
            open_prefixes += METRICS_PREFIXES
        self.open_prefixes = tuple(open_prefixes)

    def _protected(self, path: str) -> bool:
        return self.protect_all or (not path.startswith(self.open_prefixes) and path != "/v2")

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() != b"bearer" or not token.strip():
                    return False
                matched = False
                for key in self.keys:  # compare against every key: timing says nothing about which matched
                    matched |= secrets.compare_digest(token.strip(), key)
                return matched
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._protected(scope["path"]) and not self._authorized(scope):
            error = UnauthorizedError("missing or invalid API key: send Authorization: Bearer KEY")
            await _send_error(send, error, v2=_is_v2(scope), extra=[(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)

