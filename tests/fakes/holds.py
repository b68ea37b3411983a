"""Holds: a fake server keeps a chosen request waiting until the test releases it.

Why: to stop a client exactly while it waits on the network (connecting, fetching a
page), a test must know that the client's request has reached the server and is not
answered yet. A fake calls :meth:`Holds.check` with a description of each request (its
method and path, or its operation) in the request's own thread, before answering; a
matching :class:`Hold` keeps that thread there and sets :attr:`Hold.holding`, so the
test waits for an event instead of guessing at timing. :meth:`Holds.delay` slows
matching answers down instead, as a real server's work does.

Example::

    hold = fake.holds.hold("/queryAll/01g", nth=2)   # the second page request
    ...start the client...
    hold.wait()          # the server holds it now: the client waits on the network
    ...signal the client...
    hold.release()       # (closing the fake releases every hold too)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_HOLD = 120.0  # seconds a request is held at most, should a test never release it


class Hold:
    """One held request: the ``nth`` request whose description matches."""

    def __init__(self, matches: Callable[[str], bool], nth: int) -> None:
        self.matches, self.left = matches, nth
        self.holding = threading.Event()  # set while the server holds the request
        self.released = threading.Event()
        self.request = ""  # the description of the request held

    def wait(self, timeout: float = 60, alive: Callable[[], bool] | None = None) -> str:
        """Wait (with a deadline) until the server holds the request; its description.

        ``alive`` (e.g. ``lambda: proc.poll() is None``) ends the wait early with an
        error when the client is gone and so will never send the request.
        """
        deadline = time.monotonic() + timeout
        while not self.holding.wait(0.05):
            if time.monotonic() > deadline or (alive is not None and not alive()):
                raise AssertionError("the fake never received the request to hold")
        return self.request

    def release(self) -> None:
        self.released.set()


class Holds:
    """The holds and delays of one fake server (``fake.holds``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: list[Hold] = []  # waiting for their request
        self._made: list[Hold] = []  # every hold, to release them all
        self._delays: list[tuple[Callable[[str], bool], float]] = []

    def hold(self, match: str | Callable[[str], bool] = "", nth: int = 1) -> Hold:
        """Hold the ``nth`` request from now whose description contains ``match`` (or for
        which ``match(description)`` is true); '' matches every request."""
        hold = Hold(_matcher(match), nth)
        with self._lock:
            self._holds.append(hold)
            self._made.append(hold)
        return hold

    def delay(self, seconds: float, match: str | Callable[[str], bool] = "") -> None:
        """Answer every matching request ``seconds`` late (0 ends the delays)."""
        with self._lock:
            self._delays = [(_matcher(match), seconds)] if seconds else []

    def release_all(self) -> None:
        with self._lock:
            holds, self._holds, self._made = self._made, [], []
        for hold in holds:
            hold.release()

    def check(self, request: str) -> None:
        """Called by the fake for each request before it answers: hold or delay it."""
        held = None
        with self._lock:
            for hold in self._holds:
                if hold.matches(request):
                    hold.left -= 1
                    if hold.left == 0:
                        held = hold
                        break
            if held is not None:
                self._holds.remove(held)
            delays = [seconds for matches, seconds in self._delays if matches(request)]
        if held is not None:
            held.request = request
            held.holding.set()
            held.released.wait(MAX_HOLD)
        for seconds in delays:
            time.sleep(seconds)  # the fake's answer takes this long (a slow server)


def _matcher(match: str | Callable[[str], bool]) -> Callable[[str], bool]:
    return match if callable(match) else (lambda request: match in request)
