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

_buckets: dict[str, tuple[float, int]] = {}  # project -> (tokens, at epoch ms)
_lock = threading.Lock()  # the local runner serves requests in threads


def _limits(settings: Settings) -> tuple[int, int]:
    rate = settings.project_rate_limit
    return rate, settings.project_burst_limit or rate


def _forget_idle(now_ms: int, rate: int, burst: int) -> None:
    for project, (tokens, at) in list(_buckets.items()):
        if tokens + (now_ms - at) * rate / 1000 >= burst:
            del _buckets[project]


def take(project: str | None, settings: Settings, now_ms: int) -> None:
    """Spend one of the project's tokens; TooManyRequests if it has none."""
    rate, burst = _limits(settings)
    if not rate or project is None:
        return
    with _lock:
        tokens, at = _buckets.get(project, (burst, now_ms))
        tokens = min(burst, tokens + max(0, now_ms - at) * rate / 1000)
        if tokens < 1:
            _buckets[project] = (tokens, now_ms)
            wait = math.ceil((1 - tokens) / rate)
            raise TooManyRequests(
                f"Project {project} made more than {rate} requests per second "
                f"(burst {burst}). Please try again in {wait} seconds.",
                headers={"Retry-After": str(wait)})
        if project not in _buckets and len(_buckets) >= MAX_BUCKETS:
            _forget_idle(now_ms, rate, burst)
        _buckets[project] = (tokens - 1, now_ms)
