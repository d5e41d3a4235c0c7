"""Where a queue's messages are: the stage's messages table, or a pool's.

A pool (contract §3.6) is another DynamoDB location for messages: a region,
optionally an endpoint, and a table prefix, written as its URI

    dynamodb://<region>/<prefix>[?endpoint=<http(s)://host:port>]

whose messages table is `<prefix>-messages`. Queue records, subscriptions,
connections and keys stay in the stage's tables: a queue's record is its
catalogue entry and names its pool's URI, so a request finds the place
among the queue facts it reads (or keeps) anyway.

The place is a context variable: `at(uri)` points the messages table's
models there for the calls made inside it (storage.parallel's tasks follow
the caller's context), and outside any `at` they use the stage's table.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEME = "dynamodb"
# A table prefix DynamoDB accepts once "-messages" is added (255 at most).
PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class InvalidLocation(ValueError):
    """A pool URI not in the documented form (the message says why)."""


@dataclass(frozen=True)
class Place:
    uri: str
    region: str
    prefix: str
    endpoint: str | None  # None: the region's own DynamoDB

    def table(self, setting: str) -> str:
        """The pool's table for a Settings field (`messages_table`)."""
        return f"{self.prefix}-{setting.removesuffix('_table')}"


@functools.lru_cache(maxsize=256)
def parse(uri: str) -> Place:
    """The place a pool URI names; InvalidLocation if it names none."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        raise InvalidLocation(f"the uri's scheme must be {SCHEME}://")
    if not REGION.match(parts.netloc):
        raise InvalidLocation("the uri must name a region: dynamodb://<region>/<prefix>")
    prefix = parts.path.removeprefix("/")
    if not PREFIX.match(prefix):
        raise InvalidLocation("the uri's path must be a table prefix of letters, digits, "
                              "'_', '-' or '.'")
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"endpoint"} or any(len(values) != 1 for values in query.values()):
        raise InvalidLocation("the uri takes one query parameter, endpoint")
    endpoint = query.get("endpoint", [None])[0]
    if endpoint is not None:
        where = urlsplit(endpoint)
        if (where.scheme not in ("http", "https") or not where.hostname
                or where.path not in ("", "/")):
            raise InvalidLocation("the endpoint must be an http(s)://host:port URL")
    return Place(uri=uri, region=parts.netloc, prefix=prefix, endpoint=endpoint)


_current: contextvars.ContextVar[Place | None] = contextvars.ContextVar(
    "storage_place", default=None)


def current() -> Place | None:
    """The place storage is at; None for the stage's own tables."""
    return _current.get()


@contextlib.contextmanager
def at(uri: str | None) -> Iterator[None]:
    """Storage at the pool `uri` names (None: the stage's tables) inside."""
    token = _current.set(None if uri is None else parse(uri))
    try:
        yield
    finally:
        _current.reset(token)
