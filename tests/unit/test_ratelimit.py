from api.ratelimit import SlidingWindowLimiter


def test_allows_up_to_the_limit_then_says_how_long_to_wait() -> None:
    limiter = SlidingWindowLimiter(limit=3, window=60)
    assert [limiter.hit("u") for _ in range(3)] == [None, None, None]
    wait = limiter.hit("u")
    assert wait is not None
    assert 0 < wait <= 60
    assert limiter.hit("other") is None


def test_zero_disables() -> None:
    limiter = SlidingWindowLimiter(limit=0)
    assert all(limiter.hit("u") is None for _ in range(100))
