"""Progress on stderr for the command line (kept tiny: no dependency needed)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    """What the training functions take as ``progress=``: `progress` below, or None for silence."""

    def __call__(self, iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]: ...


def progress(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    items = iterable
    if total is None:  # counted up front, so the line can say "i/total"
        items = list(iterable)
        total = len(items)
    step = max(1, total // 20)
    start = time.perf_counter()
    for i, item in enumerate(items, 1):
        yield item
        if i % step == 0 or i == total:
            sys.stderr.write(f"\r  {desc}: {i}/{total} ({time.perf_counter() - start:.1f} s)")
            if i == total:
                sys.stderr.write("\n")
            sys.stderr.flush()


@contextmanager
def stage(desc: str) -> Iterator[None]:
    start = time.perf_counter()
    sys.stderr.write(f"{desc} ...\n")
    sys.stderr.flush()
    yield
    sys.stderr.write(f"{desc}: done in {time.perf_counter() - start:.2f} s\n")
    sys.stderr.flush()
