"""Small HTTP servers on loopback for the tests: a receiver that records what is POSTed to it
and answers scripted statuses (the team's webhook), and a client's web site embedding the widget
(another origin than the API)."""

from __future__ import annotations

import asyncio
import html
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    statuses: deque[int] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, delivery: str | None) -> list[Received]:
        """What was received, only the deliveries with this `X-Chatbot-Delivery` when given."""
        return [
            r
            for r in self.received
            if delivery is None or r.headers.get("x-chatbot-delivery") == delivery
        ]

    async def wait_for(self, count: int, delivery: str | None = None) -> list[Received]:
        """The first `count` requests (of one delivery), waiting at most 20 s for them."""
        async with asyncio.timeout(20):
            while len(self.of(delivery)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.of(delivery)[:count]


@asynccontextmanager
async def receiver(statuses: Iterable[int] = ()) -> AsyncIterator[Receiver]:
    """Serve POST /hook on a loopback port; answers `statuses` in order, then 200."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    state = Receiver(url=f"http://127.0.0.1:{port}/hook", statuses=deque(statuses))
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        state.received.append(Received(dict(request.headers), await request.body()))
        state.arrived.set()
        status = state.statuses.popleft() if state.statuses else 200
        return Response(status_code=status)

    async with _serving(app, sock):
        yield state


@asynccontextmanager
async def client_site() -> AsyncIterator[str]:
    """A client's site on its own origin; yields its URL. `GET /?script=<widget.js URL>&<name>=
    <value>...` is a page embedding the widget with `data-<name>="<value>"` attributes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> str:
        params = dict(request.query_params)
        src = html.escape(params.pop("script"))
        attributes = " ".join(
            f'data-{html.escape(k)}="{html.escape(v)}"' for k, v in params.items()
        )
        return (
            "<!doctype html><html lang='fr'><head><meta charset='utf-8'><title>Boutique</title>"
            f"</head><body><h1>Boutique</h1><script src='{src}' {attributes}></script></body></html>"
        )

    async with _serving(app, sock):
        # "localhost", not 127.0.0.1: another origin than the API even on the same host.
        yield f"http://localhost:{port}"


@asynccontextmanager
async def _serving(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


class _Server(uvicorn.Server):
    """Leaves signal handlers to pytest."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
