"""A local fake of OpenAI/OpenRouter (chat, embeddings) and Cohere (rerank) for tests and benches.

The real client libraries talk to it over real HTTP, so retries, timeouts, SSE parsing and
structured-output parsing are exercised exactly as in production, without network or cost.
Latency and faults (429, 500, timeout, cut stream, malformed chunk) are scriptable per model;
a latency counts from the request's arrival, so the fake's own work does not add to it.

Run alone: `python -m devtools.fake_provider --port 8900 [--ttft-ms 300 --token-delay-ms 20]`.
In tests: `async with fake_provider() as fake: ChatOpenAI(base_url=fake.openai_base_url, ...)`.

Endpoints: POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models (also under /api/v1,
OpenRouter's prefix), POST /v1/rerank and /v2/rerank (Cohere). Control API, JSON:
- POST /_fake/script {"model": m, "faults": [...]}: a queue, one fault per call to m;
  {"model": m, "always": f} every call ("ok" clears); {"model": m, "text": ...} fixed answer;
  {"model": m, "decision": {...}} fixed structured answer; {"config": {"ttft_ms": ...}} latency.
  Without "model" (or "*"), faults apply to the next calls of any model.
- POST /_fake/reset: clear scripts and calls, restore the initial config.
- GET /_fake/calls: [{"path", "model", "stream", "body", "at", "fault"}, ...] in order.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import socket
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "FAULT_KINDS",
    "MODELS",
    "FakeConfig",
    "FakeProvider",
    "FakeState",
    "answer_text",
    "create_app",
    "decide_route",
    "embed",
    "fake_provider",
    "main",
    "split_tokens",
]

FAULT_KINDS = ("429", "500", "timeout", "cut:N", "malformed", "ok")
"""What `/_fake/script` accepts; `cut:N` takes a number of content tokens, e.g. `cut:3`."""

MODELS = (
    "openai/gpt-4o-mini",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "rerank-multilingual-v3.0",
)
"""What `GET /v1/models` lists; any other model name is accepted all the same."""

TIMEOUT_FAULT_SECONDS = 30.0
_FAULT_RE = re.compile(r"^(429|500|timeout|malformed|ok|cut:\d+)$")
_ROUTE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "carole": (
        "reel",
        "instagram",
        "tiktok",
        "post",
        "linkedin",
        "contenu",
        "carrousel",
        "caption",
        "legende",
        "copywriting",
        "calendrier",
    ),
    "audrey": (
        "email",
        "mail",
        "automat",
        "crm",
        "zapier",
        "make",
        "n8n",
        "delivrabilite",
        "spf",
        "dkim",
        "tunnel",
        "sequence",
    ),
}
# The project's LLM router wraps the user's message in context; only the message decides.
_ROUTER_MARKER = "message a aiguiller"
_DOCUMENTS_RE = re.compile(r"<documents>[ \t]*\n(.*?)</documents>", re.DOTALL)
_ANY_DOCUMENTS_RE = re.compile(r"<documents>(.*?)</documents>", re.DOTALL)
_ADVICE = (
    "Concrètement, commencez par une petite étape simple cette semaine, mesurez le résultat, "
    "puis ajustez votre méthode sans vous disperser"
)


@dataclass(frozen=True)
class FakeConfig:
    """Latencies in milliseconds; all changeable at run time through `/_fake/script`."""

    ttft_ms: float = 0.0
    token_delay_ms: float = 0.0
    embedding_delay_ms: float = 0.0
    rerank_delay_ms: float = 0.0
    embedding_dimensions: int = 1536
    # A non-streamed completion (the LLM router's structured output); negative: same as ttft_ms.
    completion_ms: float = -1.0


@dataclass
class _ModelScript:
    faults: deque[str] = field(default_factory=deque)
    always: str | None = None
    text: str | None = None
    decision: dict[str, Any] | None = None


class _ConnectionCut(Exception):
    """Raised mid-response so uvicorn drops the socket: the client sees a broken body."""


class FakeState:
    """Scripts, recorded calls and live config, shared by the HTTP control API and the helpers."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.initial = config or FakeConfig()
        self.config = self.initial
        self.scripts: dict[str, _ModelScript] = {}
        self.any_model = _ModelScript()
        self.recorded: list[dict[str, Any]] = []
        # Requests being served right now, and the most seen at once, per path: shows whether
        # a client's calls overlap or queue.
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}

    def reset(self) -> None:
        self.config = self.initial
        self.scripts.clear()
        self.any_model = _ModelScript()
        self.recorded.clear()
        self.max_in_flight.clear()

    def apply_script(self, payload: Mapping[str, Any]) -> None:
        """Apply one `/_fake/script` payload; no `model` (or `"*"`) targets the next calls of any
        model. Raises ValueError on anything it does not understand, before changing state."""
        known = {"model", "faults", "always", "text", "decision", "config"}
        if unknown := set(payload) - known:
            raise ValueError(f"unknown script keys: {sorted(unknown)}")
        faults = [_check_fault(f) for f in payload.get("faults") or []]
        always = payload.get("always")
        if always is not None:
            _check_fault(always)
        decision = payload.get("decision")
        if decision is not None and not isinstance(decision, dict):
            raise ValueError("decision must be an object")
        text = payload.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError("text must be a string")
        config = _merged_config(self.config, payload.get("config") or {})
        model = payload.get("model")
        if model in (None, "*"):
            script = self.any_model
        elif isinstance(model, str):
            script = self.scripts.setdefault(model, _ModelScript())
        else:
            raise ValueError("model must be a string")
        script.faults.extend(faults)
        if "always" in payload:
            script.always = None if always == "ok" else always
        if text is not None:
            script.text = text
        if decision is not None:
            script.decision = dict(decision)
        self.config = config

    def next_fault(self, model: str) -> str:
        """The model's queue first, then the any-model queue, then standing `always` faults."""
        script = self.scripts.get(model)
        if script is not None and script.faults:
            return script.faults.popleft()
        if self.any_model.faults:
            return self.any_model.faults.popleft()
        if script is not None and script.always is not None:
            return script.always
        return self.any_model.always or "ok"

    def script_for(self, model: str) -> _ModelScript:
        return self.scripts.get(model) or _ModelScript()

    def record(self, request: Request, model: str, body: Any, fault: str) -> None:
        stream = bool(body.get("stream")) if isinstance(body, dict) else False
        self.recorded.append(
            {
                "path": request.url.path,
                "model": model,
                "stream": stream,
                "body": body,
                "at": time.time(),
                "fault": fault,
            }
        )


def _check_fault(kind: Any) -> str:
    if not isinstance(kind, str) or not _FAULT_RE.match(kind):
        raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
    return kind


def _merged_config(config: FakeConfig, changes: Mapping[str, Any]) -> FakeConfig:
    fields = {f.name: f.type for f in dataclasses.fields(FakeConfig)}
    merged: dict[str, Any] = dataclasses.asdict(config)
    for key, value in changes.items():
        if key not in fields:
            raise ValueError(f"unknown config key {key!r}")
        minimum = -1 if key == "completion_ms" else 0
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ValueError(f"config {key} must be a number >= {minimum}")
        merged[key] = int(value) if key == "embedding_dimensions" else float(value)
    return FakeConfig(**merged)


# --- Deterministic content -------------------------------------------------------------------


def _fold(text: str) -> str:
    """Lowercase without accents, so keyword and overlap matching ignore typography."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", _fold(text))


def split_tokens(text: str) -> list[str]:
    """The streamed tokens of `text`: words with their trailing spaces, joining back to it."""
    return re.findall(r"\s*\S+\s*", text) if text.strip() else [text]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def decide_route(message: str) -> dict[str, Any]:
    """The default route decision: keywords of the (folded) message, escalate when none match.

    If the text holds the project's router frame ("Message à aiguiller :"), only what follows it
    counts, so the history and the previous specialist in the frame do not sway the route.
    """
    folded = _fold(message)
    if _ROUTER_MARKER in folded:
        folded = folded.rsplit(_ROUTER_MARKER, 1)[1]
    words = re.findall(r"[a-z0-9]+", folded)
    hits = {
        route: sorted({k for k in keywords for w in words if w.startswith(k)})
        for route, keywords in _ROUTE_KEYWORDS.items()
    }
    best = max(hits, key=lambda route: len(hits[route]))
    if not hits[best]:
        return {
            "route": "escalate",
            "confidence": 0.6,
            "reason": "Aucun mot-clé marketing reconnu : un humain doit répondre.",
        }
    return {
        "route": best,
        "confidence": 0.9,
        "reason": f"Mots-clés reconnus : {', '.join(hits[best])}.",
    }


def _first_document_line(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """First non-empty line inside the `<documents>` fence (a prose mention of the tag is not
    a fence: the real one is followed by a newline)."""
    text = "\n".join(_content_text(m.get("content")) for m in messages)
    match = _DOCUMENTS_RE.search(text) or _ANY_DOCUMENTS_RE.search(text)
    if match is None:
        return None
    for line in match.group(1).splitlines():
        if line.strip():
            words = line.split()
            return " ".join(words[:12]) + (" …" if len(words) > 12 else "")
    return None


def answer_text(model: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """The default generated answer: 25-40 French words, quoting the documents, citing [1]."""
    quote = _first_document_line(messages)
    if quote is None:
        body = f"je n'ai trouvé aucun extrait précis, mais voici une piste. {_ADVICE}"
    else:
        body = f"d'après vos documents, « {quote} ». {_ADVICE}"
    return f"Réponse de {model} : {body} [1]"


def embed(text: str, dimensions: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A unit float32 vector seeded by the text's hash: same text, same vector, every run."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _count_prompt_words(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(len(_content_text(m.get("content")).split()) for m in messages)


# --- HTTP helpers ----------------------------------------------------------------------------


def _sse(payload: Mapping[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def _error(fault: str, flavour: Literal["openai", "cohere"]) -> JSONResponse:
    """429 or 500 in the provider's own error shape; 429 says it can be retried at once."""
    status = int(fault)
    message = "Rate limit reached (fake)" if status == 429 else "Internal server error (fake)"
    body: dict[str, Any]
    if flavour == "cohere":
        body = {"message": message}
    else:
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    headers = {"Retry-After": "0", "retry-after-ms": "0"} if status == 429 else {}
    return JSONResponse(body, status_code=status, headers=headers)


def _broken_json(payload: Mapping[str, Any], fault: str) -> Response:
    """A JSON body that does not parse (`malformed`) or that stops mid-way (`cut:N`)."""
    raw = json.dumps(payload).encode()
    half = raw[: len(raw) // 2]
    if fault == "malformed":
        return Response(half, media_type="application/json")

    async def body() -> AsyncIterator[bytes]:
        yield half
        raise _ConnectionCut(fault)

    return StreamingResponse(body(), media_type="application/json")


async def _sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


# Where `_InFlight` stamps the request's arrival in the ASGI scope.
ARRIVED = "fake.arrived"


async def _answer_after(ms: float, scope: Mapping[str, Any]) -> None:
    """Sleep until `ms` after the request arrived: the configured latency is the latency a
    client sees, not the fake's own work (body, answer, JSON) plus the latency. Without the
    stamp (the app called without its middleware), the whole `ms`."""
    arrived = scope.get(ARRIVED)
    start = arrived if isinstance(arrived, float) else time.perf_counter()
    await _sleep_until(start + ms / 1000)


async def _sleep_until(deadline: float) -> None:
    """Sleep until `deadline` (`time.perf_counter()`): a model streams at its own pace, so token
    i is due at first token + i delays. Sleeping one delay after each send would add the fake's
    own lateness (its loop is busy with hundreds of streams on a shared machine) to every gap
    the client measures."""
    await _sleep_ms((deadline - time.perf_counter()) * 1000)


async def _sleep_unless_disconnected(request: Request, seconds: float) -> bool:
    """Sleep like a hung upstream, but stop once the client gives up so shutdown stays quick."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        if await request.is_disconnected():
            return False
        await asyncio.sleep(min(0.05, remaining))
    return True


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise HTTPException(400, "body must be JSON") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    return body


async def _begin(
    state: FakeState,
    request: Request,
    default_model: str,
    flavour: Literal["openai", "cohere"],
) -> tuple[dict[str, Any], str, str, Response | None]:
    """What every endpoint does first: read the body, take and record the next scripted fault,
    and answer the faults that happen before any content (429/500, timeout). The response is
    set when the endpoint must return it as is."""
    body = await _json_body(request)
    model = str(body.get("model") or default_model)
    fault = state.next_fault(model)
    state.record(request, model, body, fault)
    if fault in ("429", "500"):
        return body, model, fault, _error(fault, flavour)
    if fault == "timeout" and not await _sleep_unless_disconnected(request, TIMEOUT_FAULT_SECONDS):
        return body, model, fault, Response(status_code=499)
    return body, model, fault, None


def _cut_after(fault: str) -> int | None:
    return int(fault.partition(":")[2]) if fault.startswith("cut:") else None


class _CutFilter(logging.Filter):
    """Hide uvicorn's traceback for connections dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_cut(record.exc_info[1]))


def _is_cut(exc: BaseException | None) -> bool:
    if isinstance(exc, _ConnectionCut):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_cut(e) for e in exc.exceptions)
    return False


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _CutFilter) for f in logger.filters):
        logger.addFilter(_CutFilter())


# --- Chat completions ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    """What the fake model says: text, or a tool call whose arguments are `text`."""

    text: str
    tool: str | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool else "stop"


def _answer(state: FakeState, model: str, body: Mapping[str, Any]) -> _Answer:
    """Structured requests (json_schema / json_object, or a forced tool) get a route decision;
    anything else gets text."""
    script = state.script_for(model)
    messages = _messages(body)
    response_format = body.get("response_format")
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    tool_choice = body.get("tool_choice")
    tool: str | None = None
    if tools and isinstance(tool_choice, dict):
        named = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        tool = str(named) if named else None
    elif tools and tool_choice in ("required", "any"):
        tool = str((tools[0].get("function") or {}).get("name") or "") or None
    structured = isinstance(response_format, dict) and response_format.get("type") in (
        "json_schema",
        "json_object",
    )
    if tool or structured:
        decision = script.decision or decide_route(_last_user_text(messages))
        return _Answer(json.dumps(decision, ensure_ascii=False), tool)
    return _Answer(script.text if script.text is not None else answer_text(model, messages))


class _Completion:
    """Builds one completion's payloads, all sharing an id, so chunks look like one response."""

    def __init__(self, model: str, body: Mapping[str, Any], answer: _Answer) -> None:
        self.model = model
        self.answer = answer
        self.id = f"chatcmpl-fake-{uuid.uuid4().hex[:16]}"
        self.call_id = f"call_fake_{uuid.uuid4().hex[:12]}"
        self.created = int(time.time())
        prompt = _count_prompt_words(_messages(body))
        completion = len(answer.text.split())
        self.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "provider": "fake",
            "system_fingerprint": "fp_fake",
        }

    def full(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.answer.text}
        if self.answer.tool:
            message = {"role": "assistant", "content": None, "tool_calls": [self._tool_call()]}
        choice = {
            "index": 0,
            "message": {**message, "refusal": None},
            "logprobs": None,
            "finish_reason": self.answer.finish_reason,
        }
        return {**self._envelope("chat.completion"), "choices": [choice], "usage": self.usage}

    def _tool_call(self, arguments: str | None = None) -> dict[str, Any]:
        return {
            "id": self.call_id,
            "type": "function",
            "function": {
                "name": self.answer.tool,
                "arguments": self.answer.text if arguments is None else arguments,
            },
        }

    def chunk(self, delta: Mapping[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish}
        return {**self._envelope("chat.completion.chunk"), "choices": [choice]}

    def first_delta(self) -> dict[str, Any]:
        """OpenAI opens with the role: empty content, or the tool call's id and name."""
        if self.answer.tool:
            call = {"index": 0, **self._tool_call("")}
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"role": "assistant", "content": ""}

    def token_delta(self, token: str) -> dict[str, Any]:
        if self.answer.tool:
            return {"tool_calls": [{"index": 0, "function": {"arguments": token}}]}
        return {"content": token}

    def usage_chunk(self) -> dict[str, Any]:
        return {**self._envelope("chat.completion.chunk"), "choices": [], "usage": self.usage}


async def _stream(
    completion: _Completion,
    config: FakeConfig,
    fault: str,
    include_usage: bool,
    scope: Mapping[str, Any],
) -> AsyncIterator[str]:
    yield _sse(completion.chunk(completion.first_delta()))
    if fault == "malformed":
        yield _sse('{"id": "broken", "choices": [{"delta": {"content": "oops"')
        yield _sse("[DONE]")
        return
    cut = _cut_after(fault)
    await _answer_after(config.ttft_ms, scope)
    first = time.perf_counter()
    for index, token in enumerate(split_tokens(completion.answer.text)):
        if index == cut:
            raise _ConnectionCut(fault)
        if index:
            await _sleep_until(first + index * config.token_delay_ms / 1000)
        yield _sse(completion.chunk(completion.token_delta(token)))
    if cut is not None:
        raise _ConnectionCut(fault)
    yield _sse(completion.chunk({}, completion.answer.finish_reason))
    if include_usage:
        yield _sse(completion.usage_chunk())
    yield _sse("[DONE]")


def _openai_router(state: FakeState) -> APIRouter:
    router = APIRouter()

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body, model, fault, early = await _begin(state, request, "fake-model", "openai")
        if early is not None:
            return early
        config = state.config
        completion = _Completion(model, body, _answer(state, model, body))
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return StreamingResponse(
                _stream(completion, config, fault, include_usage, request.scope),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        await _answer_after(
            config.completion_ms if config.completion_ms >= 0 else config.ttft_ms, request.scope
        )
        if fault == "malformed" or fault.startswith("cut:"):
            return _broken_json(completion.full(), fault)
        return JSONResponse(completion.full())

    @router.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        body, model, fault, early = await _begin(state, request, "text-embedding-3-small", "openai")
        if early is not None:
            return early
        config = state.config
        raw = body.get("input")
        # One string, a list of strings, or token ids (one list of ints, or a list of them).
        if isinstance(raw, str) or (
            isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)
        ):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise HTTPException(400, "input must be a string or a non-empty list")
        texts = [t if isinstance(t, str) else json.dumps(t) for t in raw]
        dimensions = int(body.get("dimensions") or config.embedding_dimensions)
        base64_format = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed(text, dimensions)
            encoded: str | list[float] = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if base64_format
                else [float(x) for x in vector]
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(t.split()) for t in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await _answer_after(config.embedding_delay_ms, request.scope)
        if fault == "malformed" or fault.startswith("cut:"):
            return _broken_json(payload, fault)
        return JSONResponse(payload)

    @router.get("/models")
    async def models() -> dict[str, Any]:
        created = int(time.time())
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "fake"} for m in MODELS
            ],
        }

    return router


# --- Rerank ----------------------------------------------------------------------------------


def _document_text(document: Any, rank_fields: Sequence[str] | None) -> str:
    if isinstance(document, str):
        return document
    if isinstance(document, dict):
        if rank_fields:
            return "\n".join(str(document.get(k, "")) for k in rank_fields)
        if "text" in document:
            return str(document["text"])
        return "\n".join(str(v) for v in document.values())
    return str(document)


def _rerank_router(state: FakeState) -> APIRouter:
    router = APIRouter()

    async def rerank(request: Request, version: Literal["1", "2"]) -> Response:
        body, _model, fault, early = await _begin(
            state, request, "rerank-multilingual-v3.0", "cohere"
        )
        if early is not None:
            return early
        config = state.config
        documents = body.get("documents")
        if not isinstance(documents, list):
            raise HTTPException(400, "documents must be a list")
        rank_fields = body.get("rank_fields")
        texts = [_document_text(d, rank_fields) for d in documents]
        query = {w for w in _words(str(body.get("query", ""))) if len(w) > 2}
        scores = [len(query & set(_words(t))) / len(query) if query else 0.0 for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -scores[i])  # stable: ties keep order
        top_n = body.get("top_n")
        if isinstance(top_n, int) and top_n > 0:
            order = order[:top_n]
        results: list[dict[str, Any]] = []
        for index in order:
            result: dict[str, Any] = {"index": index, "relevance_score": round(scores[index], 6)}
            if version == "1" and body.get("return_documents"):
                result["document"] = {"text": texts[index]}
            results.append(result)
        payload = {
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}},
        }
        await _answer_after(config.rerank_delay_ms, request.scope)
        if fault == "malformed" or fault.startswith("cut:"):
            return _broken_json(payload, fault)
        return JSONResponse(payload)

    @router.post("/v1/rerank")
    async def rerank_v1(request: Request) -> Response:
        return await rerank(request, "1")

    @router.post("/v2/rerank")
    async def rerank_v2(request: Request) -> Response:
        return await rerank(request, "2")

    return router


# --- Control API and app ---------------------------------------------------------------------


def _control_router(state: FakeState) -> APIRouter:
    router = APIRouter(prefix="/_fake")

    @router.post("/script")
    async def script(request: Request) -> dict[str, Any]:
        try:
            state.apply_script(await _json_body(request))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"ok": True, "config": dataclasses.asdict(state.config)}

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"ok": True, "config": dataclasses.asdict(state.config)}

    @router.get("/calls")
    async def calls() -> list[dict[str, Any]]:
        return state.recorded

    @router.get("/concurrency")
    async def concurrency() -> dict[str, int]:
        """The most requests served at once, per path, since the last reset."""
        return dict(state.max_in_flight)

    return router


class _InFlight:
    """ASGI middleware: count each request as in flight until its last body chunk is sent."""

    def __init__(self, app: ASGIApp, state: FakeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[ARRIVED] = time.perf_counter()
        path = str(scope["path"])
        counts, peaks = self.state.in_flight, self.state.max_in_flight
        counts[path] = counts.get(path, 0) + 1
        peaks[path] = max(peaks.get(path, 0), counts[path])
        done = False

        async def counted_send(message: Message) -> None:
            nonlocal done
            await send(message)
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and not done:
                done = True
                counts[path] -= 1

        try:
            await self.app(scope, receive, counted_send)
        finally:
            if not done:
                counts[path] -= 1


def _build(config: FakeConfig | None) -> tuple[FastAPI, FakeState]:
    _install_log_filter()
    state = FakeState(config)
    app = FastAPI(title="Fake OpenAI/OpenRouter/Cohere", docs_url=None, redoc_url=None)
    app.state.fake = state
    app.add_middleware(_InFlight, state=state)
    openai = _openai_router(state)
    app.include_router(openai, prefix="/v1")
    app.include_router(openai, prefix="/api/v1")  # OpenRouter's base URL ends in /api/v1
    app.include_router(_rerank_router(state))
    app.include_router(_control_router(state))
    return app, state


def create_app(config: FakeConfig | None = None) -> FastAPI:
    """The fake as an ASGI app; its `FakeState` is `app.state.fake`."""
    return _build(config)[0]


# --- Running it ------------------------------------------------------------------------------


@dataclass
class FakeProvider:
    """A running fake: where to point the clients, and the control API without HTTP."""

    url: str
    state: FakeState

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def cohere_base_url(self) -> str:
        return self.url

    def script(
        self,
        model: str | None = None,
        *,
        faults: Sequence[str] | None = None,
        always: str | None = None,
        text: str | None = None,
        decision: Mapping[str, Any] | None = None,
        config: Mapping[str, float] | None = None,
    ) -> None:
        """Same as POST /_fake/script; `model=None` scripts the next calls of any model."""
        payload: dict[str, Any] = {"model": model}
        for key, value in (
            ("faults", faults),
            ("always", always),
            ("text", text),
            ("decision", decision),
            ("config", config),
        ):
            if value is not None:
                payload[key] = list(value) if key == "faults" else value
        self.state.apply_script(payload)

    def reset(self) -> None:
        """Same as POST /_fake/reset."""
        self.state.reset()

    def calls(self, path: str | None = None) -> list[dict[str, Any]]:
        """Same as GET /_fake/calls, optionally only those whose path ends with `path`."""
        return [c for c in self.state.recorded if path is None or c["path"].endswith(path)]

    def max_in_flight(self, path: str) -> int:
        """The most requests to paths ending with `path` served at once (GET /_fake/concurrency)."""
        return max((n for p, n in self.state.max_in_flight.items() if p.endswith(path)), default=0)


class _InProcessServer(uvicorn.Server):
    """Leaves signal handlers to the host process (pytest), unlike `uvicorn.Server.serve`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def fake_provider(config: FakeConfig | None = None) -> AsyncIterator[FakeProvider]:
    """Serve the fake on 127.0.0.1 (free port) inside the running event loop.

    The server shares the loop with the caller, so synchronous clients (the cohere SDK behind
    `CohereRerank`, sync `invoke`) must run in a thread, e.g. `acompress_documents`.
    """
    app, state = _build(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = _InProcessServer(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the fake provider stopped before it started")
            await asyncio.sleep(0.01)
        yield FakeProvider(url=f"http://127.0.0.1:{port}", state=state)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: serve the fake until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devtools.fake_provider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--embedding-delay-ms", type=float, default=0.0)
    parser.add_argument("--rerank-delay-ms", type=float, default=0.0)
    parser.add_argument(
        "--completion-ms", type=float, default=-1.0, help="non-streamed calls; -1: --ttft-ms"
    )
    parser.add_argument("--embedding-dimensions", type=int, default=1536)
    args = parser.parse_args(argv)
    config = FakeConfig(
        ttft_ms=args.ttft_ms,
        token_delay_ms=args.token_delay_ms,
        embedding_delay_ms=args.embedding_delay_ms,
        rerank_delay_ms=args.rerank_delay_ms,
        embedding_dimensions=args.embedding_dimensions,
        completion_ms=args.completion_ms,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
