"""Dependencies shared by the routes."""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from services import Services
from store import ratelimit

RATE_LIMITED = "Trop de messages. Attendez quelques instants."


async def get_services(request: Request) -> Services:
    """The app's services. async, though it awaits nothing: FastAPI runs a plain function
    dependency in its thread pool, a thread hop on every request (`/health` included)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request) -> str:
    """The caller's address, as nginx passes it (X-Real-IP) or as seen directly."""
    forwarded = request.headers.get("x-real-ip") or request.headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


async def enforce_rate_limit(services: Services, *keys: str) -> None:
    """429 with the message the seed's widget shows, and `Retry-After`; exact across workers."""
    limit = services.settings.rate_limit_per_minute
    if limit <= 0:
        return
    wait = await ratelimit.hit(services.pool, keys, limit, 60.0)
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            RATE_LIMITED,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


UNVERIFIED = (
    "Votre identité n'a pas pu être vérifiée. Rechargez la page ; si le problème persiste, "
    "reconnectez-vous au site."
)


def expected_user_token(secret: str, user_id: str) -> str:
    """The token a site's backend computes for `user_id`: HMAC-SHA256(secret, user_id), hex."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def verify_user(services: Services, user_id: str, token: str | None) -> None:
    """With WIDGET_SECRET set, the request must prove `user_id` with its token; else 401."""
    secret = services.settings.widget_secret
    if secret is None:
        return
    expected = expected_user_token(secret.get_secret_value(), user_id)
    if token is None or not hmac.compare_digest(expected, token.lower()):
        raise ApiError(401, "unauthorized_user", UNVERIFIED)
