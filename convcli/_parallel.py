"""Threads for the core: the usable cores, one shared pool per size, row chunks.

NumPy releases the GIL inside its loops, so whole-array work split into row chunks of
about a megabyte runs on every core and stays in cache between the steps done to one
chunk. Pure: no printing, no argv.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: elements per row chunk: about a megabyte of float32, so that the temporaries of one
#: chunk stay in the second-level cache
CHUNK_ELEMENTS = 1 << 18

_pools: dict[int, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def default_threads() -> int:
    """Worker threads used when none are asked for: the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` workers (created once, shared by every caller)."""
    with _pool_lock:
        found = _pools.get(threads)
        if found is None:
            found = _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="convcli")
        return found


def parallel_map(fn: Callable[[T], R], items: Sequence[T], threads: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, on ``threads`` workers when that can help."""
    threads = default_threads() if threads is None else threads
    if threads > 1 and len(items) > 1:
        return list(pool(threads).map(fn, items))
    return [fn(item) for item in items]


def row_chunks(rows: int, per_row: int, target: int = CHUNK_ELEMENTS) -> list[slice]:
    """Slices of ``range(rows)`` holding about ``target`` elements each (at least one row).

    >>> row_chunks(10, 100, 300)
    [slice(0, 3, None), slice(3, 6, None), slice(6, 9, None), slice(9, 10, None)]
    """
    step = max(1, target // max(per_row, 1))
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]
