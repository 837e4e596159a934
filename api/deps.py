"""Dependencies shared by the routes."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.ratelimit import SlidingWindowLimiter
from services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_limiter(request: Request) -> SlidingWindowLimiter:
    limiter: SlidingWindowLimiter = request.app.state.limiter
    return limiter


ServicesDep = Annotated[Services, Depends(get_services)]
LimiterDep = Annotated[SlidingWindowLimiter, Depends(get_limiter)]


def client_address(request: Request) -> str:
    """The caller's address, as nginx passes it (X-Real-IP) or as seen directly."""
    forwarded = request.headers.get("x-real-ip") or request.headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


def enforce_rate_limit(limiter: SlidingWindowLimiter, *keys: str) -> None:
    """429 with a message the widget shows (the seed's widget shows its own for 429 too)."""
    for key in keys:
        wait = limiter.hit(key)
        if wait is not None:
            raise ApiError(
                429,
                "rate_limited",
                "Trop de messages. Attendez quelques instants.",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
