"""Refuse request bodies over the size limit before anything parses them."""

from __future__ import annotations

import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

TOO_LARGE = "Le message est trop volumineux (64 Ko au plus)."
# How much of an oversized body is read and dropped before the 413 (then the connection closes).
DRAIN_LIMIT = 1024 * 1024


class BodySizeLimit:
    """Pure ASGI middleware: 413 when Content-Length (or the bytes actually received, for a
    chunked body) exceeds `max_bytes`; the route never sees the body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        too_large = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may turn the aborted read into its own 400: answer 413 instead.
            nonlocal refused
            if too_large:
                if not refused:
                    refused = True
                    await self._drain(receive)
                    await self._refuse(send)
                return
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if too_large and not refused:
            await self._drain(receive)
            refused = True
            await self._refuse(send)

    async def _drain(self, receive: Receive) -> None:
        """Read (and drop) the rest of an oversized chunked body, up to a bound, so the client
        that is still sending gets the 413 instead of a broken connection."""
        dropped = 0
        while dropped < DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body"):
                return

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(error_body("payload_too_large", TOO_LARGE), ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    """Raised out of `receive` once the body passes the limit."""
