"""Errors the widget can show: every failure answers `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.metrics import RATE_LIMITED

log = logging.getLogger(__name__)

FIELD_LABELS = {
    "message": "Le message",
    "user_id": "L'identifiant utilisateur (user_id)",
    "userId": "L'identifiant utilisateur (userId)",
    "conversation_id": "L'identifiant de conversation (conversation_id)",
    "conversationId": "L'identifiant de conversation (conversationId)",
    "timestamp": "La date d'envoi (timestamp)",
    "rating": "L'avis (rating)",
    "comment": "Le commentaire",
    "content": "Le message",
}


class ApiError(Exception):
    """An error with a status, a stable code and a message for the user."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def describe(error: dict[str, Any]) -> str:
    """One validation error in French."""
    kind = str(error.get("type", ""))
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    field = loc[-1] if loc else ""
    label = FIELD_LABELS.get(field, f"Le champ « {field} »" if field else "La requête")
    ctx = error.get("ctx") or {}
    match kind:
        case "missing":
            return f"{label} est manquant."
        case "string_too_short":
            return f"{label} est vide."
        case "string_too_long":
            return f"{label} est trop long (au plus {ctx.get('max_length')} caractères)."
        case "string_type":
            return f"{label} doit être une chaîne de caractères."
        case "string_pattern_mismatch":
            return f"{label} contient des caractères non autorisés."
        case "literal_error":
            expected = str(ctx.get("expected", "")).replace(" or ", " ou ")
            return f"{label} doit valoir {expected}."
        case "json_invalid":
            return "Le corps de la requête n'est pas du JSON valide."
        case "model_attributes_type" | "dict_type":
            return "Le corps de la requête doit être un objet JSON."
        case kind if kind.startswith("datetime"):
            return f"{label} doit être une date ISO 8601, par exemple 2025-11-03T12:00:00Z."
        case _:
            return f"{label} est invalide : {error.get('msg', kind)}."


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "detail": detail if detail else message}


UNAVAILABLE = (
    "Le service est momentanément indisponible. Réessayez dans quelques secondes : rien de ce "
    "que vous avez déjà envoyé n'est perdu."
)
INTERNAL = "Une erreur inattendue est survenue. Réessayez dans un instant."
HTTP_MESSAGES = {
    404: ("not_found", "Cette adresse n'existe pas."),
    405: ("method_not_allowed", "Cette méthode n'est pas acceptée pour cette adresse."),
    413: ("payload_too_large", "Le message est trop volumineux (64 Ko au plus)."),
    415: ("unsupported_media_type", "Le corps de la requête doit être du JSON."),
}


def install(app: FastAPI) -> None:
    """Register the handlers that shape errors: every error body is `{"error": {"code",
    "message"}, "detail"}`, including the framework's own 404/405 and a database outage."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = HTTP_MESSAGES.get(exc.status_code, ("http_error", "Requête refusée."))
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(code, message, exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %r", exc)
        return JSONResponse(
            status_code=503,
            content=error_body("service_unavailable", UNAVAILABLE),
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse(status_code=500, content=error_body("internal_error", INTERNAL))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        messages = list(dict.fromkeys(describe(e) for e in errors)) or ["Requête invalide."]
        detail = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in errors]
        return JSONResponse(
            status_code=422, content=error_body("invalid_request", " ".join(messages), detail)
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 429:
            # Only the chat routes are rate limited, and their paths have no parameters.
            RATE_LIMITED.labels(route=request.url.path).inc()
        return JSONResponse(
            status_code=exc.status, content=error_body(exc.code, exc.message), headers=exc.headers
        )
