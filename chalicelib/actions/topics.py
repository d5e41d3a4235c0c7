"""Topics: queues of another kind, kept apart from the project's queues.

A topic lives in its project's topic space (storage.base.TOPIC_SPACE), so
every queue action and store, and the stream handler's notifications, serve
topics unchanged, and topics list and count apart from queues.
"""
from __future__ import annotations

import dataclasses

from chalicelib.storage.base import TOPIC_SPACE
from chalicelib.validation import Context


def context(ctx: Context) -> Context:
    """The caller's context for its project's topics."""
    return dataclasses.replace(ctx, project=ctx.project + TOPIC_SPACE)
