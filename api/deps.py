"""Dependencies shared by the routes."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from services import Services
from store import ratelimit

RATE_LIMITED = "Trop de messages. Attendez quelques instants."


def get_services(request: Request) -> Services:
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
