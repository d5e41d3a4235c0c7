"""Independent DynamoDB requests sent at once.

A claim's conditional writes do not depend on each other, nor do its reads of
due timers and of candidates: sent together, a claim of 10 costs a few round
trips of latency instead of one per message. The requests are the same.
"""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

T = TypeVar("T")
# Tasks never wait on other tasks of the pool, so it cannot deadlock; its
# size bounds the requests in flight (models.MAX_POOL_CONNECTIONS is above it).
WORKERS = 32
_POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="storage")


def in_parallel(calls: Iterable[Callable[[], T]]) -> list[T]:
    """Run the calls at once (the first in this thread) and return their
    results in order. All have ended when it returns or raises (the first
    failure is raised), so no write is still under way behind the caller."""
    calls = list(calls)
    # Each task runs in a copy of the caller's context (so context variables,
    # such as a meter's per-caller tally, follow the request).
    futures = [_POOL.submit(contextvars.copy_context().run, call) for call in calls[1:]]
    results, failure = [], None
    for index, call in enumerate(calls):
        try:
            results.append(call() if index == 0 else futures[index - 1].result())
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return results
