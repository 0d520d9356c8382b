"""A request's time budget (issue 10): work running for a request stops at the next safe point once
the budget is spent or the request is abandoned (the client left, the server answered 503).

The pipeline is synchronous work in a worker thread, which cannot be interrupted from outside; so
it checks ``checkpoint()`` at safe points (per Bundle entry, per Encounter) and the database gives
up a running statement (adapter/service/store.py: SQLite's progress handler, PostgreSQL's
statement_timeout).  The deadline travels in a context variable, which the service's worker
threads inherit from the request; without one (the CLI, batch, the library) nothing is checked.
A transaction commits only through ``committing()``: once the deadline is spent nothing more
commits, and while a commit runs the request is not abandoned, so an answer is never both 503
and a stored write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar


class DeadlineExceeded(Exception):
    """The request's time budget is spent, or the request was abandoned: stop working on it."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._stopped = False
        self._commits = 0

    def remaining(self) -> float:
        return 0.0 if self._stopped else max(0.0, self._at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self._stopped or time.monotonic() >= self._at

    def check(self) -> None:
        if self.expired:
            raise DeadlineExceeded

    def stop(self) -> bool:
        """Abandon the work (its next checkpoint raises); False while a commit is under way, which
        then completes and answers."""
        with self._lock:
            if self._commits:
                return False
            self._stopped = True
            return True

    @contextmanager
    def committing(self) -> Iterator[None]:
        """Around a commit: refused (DeadlineExceeded) once the budget is spent, else not abandoned until done."""
        with self._lock:
            self.check()
            self._commits += 1
        try:
            yield
        finally:
            with self._lock:
                self._commits -= 1


current: ContextVar[Deadline | None] = ContextVar("theraclaim_deadline", default=None)


def checkpoint() -> None:
    """A safe point to stop: raises DeadlineExceeded when the current request's budget is spent."""
    deadline = current.get()
    if deadline is not None and deadline.expired:
        raise DeadlineExceeded


P = ParamSpec("P")
R = TypeVar("R")


def unbudgeted(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run outside the request's budget: what must be written even for a request that
    ran out of time (its AuditEvent)."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = current.set(None)
        try:
            return function(*args, **kwargs)
        finally:
            current.reset(token)

    return run
