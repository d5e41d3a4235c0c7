"""A clock tests and bench scripts control, standing in for
chalicelib.clock.now_ms (the service reads time only through it).

    clock = FakeClock()                  # stands still at the time now
    monkeypatch.setattr(chalicelib.clock, "now_ms", clock)
    clock.advance(61)                    # a minute and a second later

With running=True it follows real time too (a bench's long run), and
install()/restore() swap it in and out without pytest.
"""
import time

from chalicelib import clock as service_clock


class FakeClock:
    def __init__(self, start_ms=None, running=False):
        self._start = int(time.time() * 1000) if start_ms is None else start_ms
        self._started = time.monotonic()
        self._running = running
        self._offset = 0
        self._real = None

    @property
    def now(self):
        """The time it shows, in epoch ms."""
        ran = int((time.monotonic() - self._started) * 1000) if self._running else 0
        return self._start + ran + self._offset

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self._offset += int(seconds * 1000)

    def install(self):
        self._real, service_clock.now_ms = service_clock.now_ms, self
        return self

    def restore(self):
        service_clock.now_ms = self._real
