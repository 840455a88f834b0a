"""What machine a measurement came from: CPU model, cores, ISA flags, memory, library versions.

Every benchmark report states these, since a speed ratio means little without them.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

# ISA extensions that decide which kernels runtimes pick (x86 and Arm spellings from /proc/cpuinfo).
_ISA_OF_INTEREST = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "asimdhp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
)

#: Libraries whose versions a benchmark report records when they are installed.
LIBRARIES = ("torch", "onnx", "onnxruntime", "openvino", "numpy", "pillow")


def _cpuinfo() -> list[dict[str, str]]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return []
    blocks: list[dict[str, str]] = []
    for block in path.read_text(errors="replace").split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@cache
def machine() -> dict[str, Any]:
    """The CPU (model, logical and physical cores, cores this process may use, ISA flags),
    memory and OS of this machine."""
    cpus = _cpuinfo()
    first = cpus[0] if cpus else {}
    model = first.get("model name") or first.get("Hardware") or platform.processor() or platform.machine()
    flags = set((first.get("flags") or first.get("Features") or "").split())
    physical = {(c.get("physical id", "0"), c.get("core id", str(i))) for i, c in enumerate(cpus)}
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return {
        "cpu": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": len(physical) if cpus else None,
        "usable_cores": usable,
        "isa": [f for f in _ISA_OF_INTEREST if f in flags],
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions() -> dict[str, str]:
    """Versions of ferry and of the installed libraries in :data:`LIBRARIES`."""
    from ferry._version import __version__

    versions = {"ferry": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe(info: dict[str, Any] | None = None) -> str:
    """One line: ``Intel Xeon ... (2 cores usable, avx512_vnni, ...), 23 GiB``."""
    m = info or machine()
    mem = f", {m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else ""
    isa = ", ".join(m["isa"][-4:]) if m.get("isa") else m.get("arch", "")
    return f"{m['cpu']} ({m['usable_cores']} cores usable; {isa}){mem}"


class PeakMemory:
    """Peak resident memory added during a block, from the kernel's high-water mark.

    Linux lets a process reset its own ``VmHWM`` (``/proc/self/clear_refs``), so the peak of
    one block can be read without a child process. Elsewhere ``added`` stays ``None``.
    """

    def __init__(self) -> None:
        self.added: int | None = None
        self._start: int | None = None

    @staticmethod
    def _status(key: str) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return self
        self._start = self._status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        peak = self._status("VmHWM")
        if self._start is not None and peak is not None:
            self.added = max(0, peak - self._start)
