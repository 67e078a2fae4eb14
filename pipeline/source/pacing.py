"""Rate control and latency bookkeeping for the emulator; both are thread-safe."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from random import Random


class Pacer:
    """Spaces sends so that `rate` records per second leave, shared by every worker thread.

    Each call reserves the next free slot on a virtual timeline (`n / rate` seconds long) and
    sleeps until it starts. A sender that was held up (a slow answer, a busy CPU) may catch up
    on at most `burst` seconds of missed slots, so short hiccups do not lower the rate and a
    slow server never causes a long burst afterwards. `rate=None` means as fast as possible.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        burst: float = 0.2,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive (or None for unlimited), got {rate}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self, records: int, stop: threading.Event) -> bool:
        """Block until `records` may be sent; False if `stop` was set while waiting."""
        if self.rate is None:
            return not stop.is_set()
        with self._lock:
            now = self._clock()
            start = now if self._next is None else max(self._next, now - self.burst)
            self._next = start + records / self.rate
        delay = start - now
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()


class LatencyRecorder:
    """Request latencies for p50/p99 in bounded memory (a reservoir sample beyond `capacity`)."""

    def __init__(self, capacity: int = 100_000, seed: int = 0) -> None:
        self.capacity = capacity
        self.count = 0
        self._samples: list[float] = []
        self._random = Random(seed)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.count += 1
            if len(self._samples) < self.capacity:
                self._samples.append(seconds)
            else:
                slot = self._random.randrange(self.count)
                if slot < self.capacity:
                    self._samples[slot] = seconds

    def percentile(self, fraction: float) -> float | None:
        """The nearest-rank percentile in seconds (`fraction` in 0..1), None without samples."""
        with self._lock:
            if not self._samples:
                return None
            ordered = sorted(self._samples)
        rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
        return ordered[rank - 1]
