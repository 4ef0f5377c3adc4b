"""Prefect's sync/async dispatch of the public tasks, imported in this one place: it lives in
`prefect._internal`, which promises no compatibility, so a Prefect that moves it is mended here."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from prefect._internal.compatibility.async_dispatch import async_dispatch
from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")


def dispatch_to(async_task: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`async_dispatch(async_task)`, typed as the sync function it decorates: under `@task`, the sync
    task's own run context is not async, so its sync body runs and a value comes back (`.aio` and a
    call outside any run, on a running loop, go to the async twin)."""
    return cast(Callable[[Callable[P, R]], Callable[P, R]], async_dispatch(async_task))


def run_sync(coroutine: Coroutine[Any, Any, R]) -> R:
    """A coroutine run to its end from a sync task (on a loop of its own, in a thread if one is running)."""
    from prefect.utilities.asyncutils import run_coro_as_sync

    return cast(R, run_coro_as_sync(coroutine))
