"""ASGI middleware: every request gets an answer within a deadline.

When the database is down or the pool is exhausted, a request must not hang: past the
deadline it is cancelled (its transaction rolls back) and answered 503 with Retry-After.
The same 503 answers a request that failed because the database is unreachable. Its JSON
body is the caller's to choose (``unavailable``): each API answers errors in its own shape.

Every request has the same deadline (``seconds`` after it starts), so they pass in the order
the requests started. :class:`Deadlines` keeps them in that order, in one queue per event loop,
with one timer armed for the earliest: a request costs an append and a flag, instead of the
timer, the context manager and the cancellation bookkeeping of an ``asyncio.timeout`` each.
When a deadline passes, its request's task is cancelled and the cancellation turned into the
timeout exactly as ``asyncio.timeout`` does (``Task.uncancel``), so a cancellation from
elsewhere (shutdown, a client gone) still propagates as one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyrelease.db import is_unavailable
from keyrelease.logs import request_id
from keyrelease.request_id import HEADER, accepted_id

log = logging.getLogger("keyrelease")
UNAVAILABLE = "The service is temporarily unavailable; try again shortly."
#: The JSON body of the 503 for a request, given its scope.
UnavailableBody = Callable[[Scope], object]


class _Pending:
    """One request's deadline: its task, when it passes, and whether it is over or has passed."""

    __slots__ = ("at", "cancelling", "expired", "finished", "task")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task: asyncio.Task[object] = task
        self.at = at
        self.cancelling = task.cancelling()
        self.finished = False
        self.expired = False


class Deadlines:
    """The deadlines of the requests running through one middleware, all ``seconds`` long, in
    the order they pass (the order the requests started), and one timer for the earliest: per
    event loop (:class:`_LoopDeadlines`; a server runs one, tests and embeddings may run more,
    each in its thread).

    :meth:`start` appends; a finished request's entry is flagged and dropped when it reaches
    the head of the queue (at the next start, or when the timer fires). When the timer fires,
    every request whose deadline has passed is cancelled, and the timer is armed again for the
    earliest one still running.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDeadlines] = weakref.WeakKeyDictionary()
        #: The last loop (weakly) and its queue, as one attribute (read and replaced whole: safe
        #: across threads). Nothing here holds a loop: a closed one's queue goes with it.
        self._last: tuple[Callable[[], asyncio.AbstractEventLoop | None], _LoopDeadlines | None] = (lambda: None, None)

    def start(self) -> _Pending:
        """The current task's deadline, from now."""
        loop = asyncio.get_running_loop()
        last_loop, deadlines = self._last
        if last_loop() is not loop or deadlines is None:
            deadlines = self._loops.get(loop)
            if deadlines is None:
                deadlines = self._loops.setdefault(loop, _LoopDeadlines(self.seconds))
            self._last = (weakref.ref(loop), deadlines)
        return deadlines.start(loop)


class _LoopDeadlines:
    """:class:`Deadlines` on one event loop: its queue and its timer, touched only from that
    loop (the timer is its own)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.queue: deque[_Pending] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> _Pending:
        queue = self.queue
        while queue and queue[0].finished:
            queue.popleft()
        task = asyncio.current_task(loop)
        assert task is not None, "a request runs in a task"
        pending = _Pending(task, loop.time() + self.seconds)
        queue.append(pending)
        if self.timer is None:
            self.timer = loop.call_at(pending.at, self._expire)
        return pending

    def _expire(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()  # the timer's own
        now, queue = loop.time(), self.queue
        while queue and (queue[0].finished or queue[0].at <= now):
            pending = queue.popleft()
            if not pending.finished:
                pending.expired = True
                pending.task.cancel()
        if queue:
            self.timer = loop.call_at(queue[0].at, self._expire)


class RequestDeadline:
    def __init__(self, app: ASGIApp, seconds: float, unavailable: UnavailableBody) -> None:
        self.app = app
        self.seconds = seconds
        self.unavailable = unavailable
        self.deadlines = Deadlines(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self._run(scope, receive, tracking_send, lambda: started)

    async def _run(self, scope: Scope, receive: Receive, send: Send, started: Callable[[], bool]) -> None:
        """The app within the deadline; ``send`` tells ``started()`` when the response began."""
        try:
            await self._within_deadline(scope, receive, send)
        except TimeoutError:
            log.warning("request to %s passed its %.1fs deadline", scope.get("path"), self.seconds)
            if not started():
                await self._unavailable(scope, send)
        except Exception as err:
            if not is_unavailable(err) or started():
                raise
            log.warning("request to %s failed: database unavailable (%s)", scope.get("path"), type(err).__name__)
            await self._unavailable(scope, send)

    async def _within_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app; TimeoutError when its deadline passes first (as ``asyncio.timeout`` raises it)."""
        pending = self.deadlines.start()
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if pending.expired and pending.task.uncancel() <= pending.cancelling:
                raise TimeoutError from None  # ours alone: the deadline passed
            raise
        except BaseException:
            if pending.expired:  # the cancellation was not what ended it: take it back
                pending.task.uncancel()
            raise
        else:
            if pending.expired:  # the cancellation never reached an await: take it back
                pending.task.uncancel()
        finally:
            pending.finished = True
            del pending.task  # a finished entry waiting in the queue holds no task (nor its loop)

    async def _unavailable(self, scope: Scope, send: Send) -> None:
        body = json.dumps(self.unavailable(scope)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequestContext(RequestDeadline):
    """:class:`keyrelease.request_id.RequestId` and :class:`RequestDeadline` in one middleware:
    the request's id (its log records, its ``X-Request-Id``) and its deadline, with one ``send``
    wrapper per request instead of two. ``seconds=None``: no deadline (a static answer)."""

    def __init__(self, app: ASGIApp, seconds: float | None, unavailable: UnavailableBody) -> None:
        super().__init__(app, seconds or 0.0, unavailable)
        self.timed = seconds is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = accepted_id(next((value for name, value in scope["headers"] if name == HEADER), None))
        token = request_id.set(current)
        header = (HEADER, current.encode())
        started = False

        async def context_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            if self.timed:
                await self._run(scope, receive, context_send, lambda: started)
            else:
                await self.app(scope, receive, context_send)
        finally:
            request_id.reset(token)
