"""In-process background jobs (contact imports) that outlive the request that started them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bulkcall.kit.logging import get_logger

log = get_logger("bulkcall.jobs")


class BackgroundJobs:
    """Keeps a reference to each running job (so it is not garbage-collected) and cancels them on shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._daemons: set[asyncio.Task[Any]] = set()

    def start(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def start_daemon(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A loop that lives as long as the app (e.g. a sweeper); ``wait_idle`` does not wait for it."""
        task = asyncio.create_task(coroutine, name=name)
        self._daemons.add(task)
        task.add_done_callback(self._daemon_finished)
        return task

    def every(
        self, seconds: float, name: str, step: Callable[[], Awaitable[object]], *, first_after: float = 0.0
    ) -> asyncio.Task[Any]:
        """Run ``step`` every ``seconds`` (the first time after ``first_after``) until shutdown.

        An error is logged and the loop goes on.
        """
        return self.start_daemon(name, _repeat(seconds, name, step, first_after))

    def _daemon_finished(self, task: asyncio.Task[Any]) -> None:
        self._daemons.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_daemon_failed", job=task.get_name(), error=repr(task.exception()))

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_job_failed", job=task.get_name(), error=repr(task.exception()))

    async def wait_idle(self) -> None:
        """Wait until every job started so far has finished (tests and the CLI use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def shutdown(self) -> None:
        tasks = [*self._tasks, *self._daemons]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _repeat(seconds: float, name: str, step: Callable[[], Awaitable[object]], first_after: float) -> None:
    await asyncio.sleep(first_after)
    while True:
        try:
            await step()
        except Exception:
            log.exception("background_step_failed", job=name)
        await asyncio.sleep(seconds)
