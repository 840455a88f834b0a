"""Is a benchmark's result to be trusted? The machine's load around the timing and each row's
run-to-run spread, judged by a pure function so that the rule can be tested with made-up numbers.

The thresholds and the reasoning behind them are in docs/performance.md ("Noise").
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Other processes' 1-minute load average per CPU at or above which the machine counts as busy:
#: runtimes start one thread per core, so with half the cores taken some of their threads share
#: a core and every parallel region waits for the slowest one.
BUSY_LOAD_PER_CPU = 0.5
#: Interquartile range over median above which a row's timings count as noisy: two rows that
#: each wander this much cannot be told apart by less than about twice it.
NOISY_RELATIVE_IQR = 0.10
#: Fewer timed runs than this give no meaningful quartiles; such rows are not judged.
MIN_RUNS_TO_JUDGE_SPREAD = 5


def quartiles(times: Sequence[float]) -> tuple[float, float, float]:
    """25th, 50th and 75th percentiles of ``times`` (NaN when empty)."""
    if not times:
        return (float("nan"),) * 3
    p25, p50, p75 = np.percentile(times, [25, 50, 75])
    return float(p25), float(p50), float(p75)


def relative_iqr(times: Sequence[float]) -> float:
    """Interquartile range over median: how far apart the middle half of the runs lie."""
    p25, p50, p75 = quartiles(times)
    return (p75 - p25) / p50 if p50 > 0 else float("nan")


def read_load() -> float | None:
    """The 1-minute load average, or None where the OS has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def own_cpu_seconds() -> float:
    """CPU time this process used so far, all threads, user and system."""
    t = os.times()
    return t.user + t.system


@dataclass(frozen=True)
class MachineLoad:
    """How busy the machine was around the timing.

    Attributes:
        before: 1-minute load average when the benchmark started (None: not available).
        after: 1-minute load average when the timing ended.
        cpus: logical CPUs of the machine (``os.cpu_count()``; the load average counts all of them).
        own_cores: this process's average busy cores between the two readings (its CPU time over
            the wall time), i.e. the most it can have added to ``after`` itself.
    """

    before: float | None
    after: float | None
    cpus: int | None
    own_cores: float = 0.0

    @property
    def others(self) -> float | None:
        """Load of the other processes: the reading before, or the one after less this process's
        own share, whichever is higher."""
        after = None if self.after is None else self.after - self.own_cores
        readings = [x for x in (self.before, after) if x is not None]
        return max(readings) if readings else None

    @property
    def per_cpu(self) -> float | None:
        others = self.others
        return None if others is None or not self.cpus else max(others, 0.0) / self.cpus

    @property
    def busy(self) -> bool:
        per_cpu = self.per_cpu
        return per_cpu is not None and per_cpu >= BUSY_LOAD_PER_CPU

    def to_dict(self) -> dict[str, Any]:
        return {
            "load_average_1min_before": self.before,
            "load_average_1min_after": self.after,
            "cpus": self.cpus,
            "own_cores": self.own_cores,
            "others_per_cpu": self.per_cpu,
            "busy": self.busy,
            "busy_at_per_cpu": BUSY_LOAD_PER_CPU,
        }


class LoadWatch:
    """Reads the load average and this process's CPU time when made, and again at :meth:`stop`."""

    def __init__(self) -> None:
        self._load, self._cpu, self._wall = read_load(), own_cpu_seconds(), time.perf_counter()

    def stop(self) -> MachineLoad:
        wall = max(time.perf_counter() - self._wall, 1e-9)
        return MachineLoad(self._load, read_load(), os.cpu_count(), (own_cpu_seconds() - self._cpu) / wall)


@dataclass(frozen=True)
class BenchWarning:
    """Why a benchmark's numbers may mislead.

    Attributes:
        kind: ``"load"`` (other processes kept the machine busy) or ``"spread"`` (runs of the same
            backend disagree).
        message: one line for people.
        rows: the rows concerned (``"backend shape"``, with the threads when set); empty: all.
    """

    kind: str
    message: str
    rows: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "rows": list(self.rows)}


def noise_warnings(load: MachineLoad, timings: Mapping[str, Sequence[float]]) -> list[BenchWarning]:
    """The warnings a benchmark's result deserves: a busy machine, and rows whose runs spread wide.

    Args:
        load: the load average around the timing and the machine's CPU count.
        timings: each row's per-run times in seconds, by row label.
    """
    out = []
    if load.busy and load.others is not None:
        out.append(
            BenchWarning(
                "load",
                f"busy machine: the other processes' 1-minute load average was {load.others:.1f} on {load.cpus} CPUs"
                f" (busy from {BUSY_LOAD_PER_CPU} per CPU), so times are slow and noisy and ratios to eager can be"
                " far off; rerun on an idle machine, or compare at --threads 1",
            )
        )
    spreads = {
        label: spread
        for label, times in timings.items()
        if len(times) >= MIN_RUNS_TO_JUDGE_SPREAD and (spread := relative_iqr(times)) > NOISY_RELATIVE_IQR
    }
    if spreads:
        worst = ", ".join(f"{label} ({spread:.1%})" for label, spread in spreads.items())
        out.append(
            BenchWarning(
                "spread",
                f"noisy timings: the middle half of the runs spans more than {NOISY_RELATIVE_IQR:.0%} of the median"
                f" for {worst}; differences smaller than that are noise",
                tuple(spreads),
            )
        )
    return out
