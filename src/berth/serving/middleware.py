"""Pure ASGI middleware: request body size limit and API-key authentication."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth.errors import BerthError, PayloadTooLargeError, UnauthorizedError, render_error
from berth.serving.codec import dumps

OPEN_PREFIXES = ("/health", "/ping", "/metrics", "/docs", "/openapi.json", "/redoc", "/v2/health")


async def _send_error(send: Send, error: BerthError, *, v2: bool, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    status, payload = render_error(error, v2=v2)
    body = dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_v2(scope: Scope) -> bool:
    return str(scope.get("path", "")).startswith("/v2")


class BodyLimitMiddleware:
    """413 for a body over the limit: from Content-Length up front, or while streaming a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLargeError(f"request body is larger than {self.max_bytes} bytes (--max-body-mb)")
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_error(send, too_large, v2=_is_v2(scope))
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _send_error(send, too_large, v2=_is_v2(scope))


class _BodyTooLarge(Exception):
    pass


class ApiKeyMiddleware:
    """``Authorization: Bearer KEY`` on protected routes; keys compared in constant time."""

    def __init__(self, app: ASGIApp, keys: Iterable[str], protect_all: bool = False) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]
        self.protect_all = protect_all

    def _protected(self, path: str) -> bool:
        return self.protect_all or (not path.startswith(OPEN_PREFIXES) and path != "/v2")

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() != b"bearer":
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

