"""Per-project request limits: a token bucket per project, in memory.

A bucket holds up to the burst limit and refills at the rate limit; each
request (a REST call or a websocket frame) takes one token, and without one
is refused with 429 and Retry-After. The buckets live in the process: locally
that is the runner's one process, so the limits are exact; on AWS each warm
function container keeps its own, so a project may get up to the limit
times the number of containers serving it. API Gateway's stage throttling
(api_rate_limit, written into the template by infra/package.py) bounds the
whole API regardless. A shared counter (a DynamoDB item per project and
second) would be exact, but would add a write to every request, which costs
more than the requests it protects. API Gateway's usage plans would be exact
too, but need an API Gateway key per project (at most 10,000 per account and
region), made out of band, and an authorizer naming it on every stage, noauth
ones included.
"""
from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from chalicelib.errors import TooManyRequests

if TYPE_CHECKING:
    from chalicelib.config import Settings

# Buckets kept at most; past it, the full ones (idle projects) are dropped.
MAX_BUCKETS = 10_000
# What API Gateway answers past the stage's own limits (infra/package.py
# writes it; the local runner answers it, from the stage's bucket, STAGE).
GATEWAY_THROTTLED_BODY = {"title": "Too many requests",
                          "description": "This service is receiving more requests than it "
                                         "serves. Please try again in a few seconds."}
STAGE = ("stage",)  # the stage's bucket, beside the projects' (str) ones

_buckets: dict[object, tuple[float, int]] = {}  # key -> (tokens, at epoch ms)
_lock = threading.Lock()  # the local runner serves requests in threads


def _forget_idle(now_ms: int, rate: int, burst: int) -> None:
    for key, (tokens, at) in list(_buckets.items()):
        if tokens + (now_ms - at) * rate / 1000 >= burst:
            del _buckets[key]


def spend(key: object, rate: int, burst: int, now_ms: int) -> int:
    """Spend one token of the bucket `key` (refilled at `rate` a second, up to
    `burst`); 0 if there was one, else the seconds until there is."""
    with _lock:
        tokens, at = _buckets.get(key, (burst, now_ms))
        tokens = min(burst, tokens + max(0, now_ms - at) * rate / 1000)
        if tokens < 1:
            _buckets[key] = (tokens, now_ms)
            return math.ceil((1 - tokens) / rate)
        if key not in _buckets and len(_buckets) >= MAX_BUCKETS:
            _forget_idle(now_ms, rate, burst)
        _buckets[key] = (tokens - 1, now_ms)
        return 0


def take(project: str | None, settings: Settings, now_ms: int) -> None:
    """Spend one of the project's tokens; TooManyRequests if it has none."""
    rate = settings.project_rate_limit
    burst = settings.project_burst_limit or rate
    if not rate or project is None:
        return
    wait = spend(project, rate, burst, now_ms)
    if wait:
        raise TooManyRequests(
            f"Project {project} made more than {rate} requests per second "
            f"(burst {burst}). Please try again in {wait} seconds.",
            headers={"Retry-After": str(wait)})
