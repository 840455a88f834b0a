"""The only timer in ferry: interleaved rounds, and the median of repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

from ferry.errors import UserError


def interleave(
    runs: Mapping[str, Callable[[], float]], *, seconds: float, min_runs: int = 5, max_runs: int = 1000
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Call each function once per round, in an order rotating from round to round, until
    ``seconds`` have passed and every one ran ``min_runs`` times (or ``max_runs``).

    Each function runs the model once and returns its own timing in seconds. A function that
    raises :class:`UserError` leaves the rotation; its message is returned.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    errors: dict[str, str] = {}
    order = list(runs)
    start = time.perf_counter()
    rounds = 0
    while order and rounds < max_runs:
        if rounds >= min_runs and time.perf_counter() - start >= seconds:
            break
        shift = rounds % len(order)
        for name in order[shift:] + order[:shift]:
            try:
                times[name].append(runs[name]())
            except UserError as exc:
                errors[name] = str(exc)
        order = [n for n in order if n not in errors]
        rounds += 1
    return times, errors


def median_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, in seconds (one process, nothing else timed)."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(statistics.median(times))
