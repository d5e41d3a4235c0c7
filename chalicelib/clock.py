"""The service's one clock. Everything that compares against "now" asks here,
so tests can move time forward (patch `now_ms`) instead of sleeping."""
import time


def now_ms():
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)
