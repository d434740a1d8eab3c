"""Memory of a server under test: resident (RSS) and proportional (PSS) set size of each of its processes.

RSS counts every page a process maps, so forked workers that share their parent's pages (copy-on-write) count
them again each; PSS splits a shared page between the processes sharing it, so PSS adds up to what the server
really holds. Both are read from /proc: ``status`` (VmRSS) and ``smaps_rollup`` (Pss, when readable).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.serving import procs
from bench.serving.common import ROOT


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    ppid: int
    name: str  # the command line, shortened
    rss_kib: int
    pss_kib: int | None


def kib_field(text: str, name: str) -> int | None:
    """The value of a ``Name:   1234 kB`` line of a /proc file (``status``, ``smaps_rollup``), or None."""
    prefix = f"{name}:"
    for line in text.splitlines():
        if line.startswith(prefix):
            parts = line[len(prefix):].split()
            if parts and parts[0].isdigit() and (len(parts) == 1 or parts[1] == "kB"):
                return int(parts[0])
            return None
    return None


def short_command(cmdline: bytes, limit: int = 80, strip: str = "") -> str:
    """A /proc/PID/cmdline (NUL-separated) as one line: the program's base name and its arguments, with the
    prefix ``strip`` (the repository's path) taken off each argument."""
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    if not args:
        return "?"
    args = [a.removeprefix(strip) if strip else a for a in args]
    args[0] = args[0].rsplit("/", 1)[-1]
    text = " ".join(args)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_process(pid: int, ppid: int) -> ProcessMemory | None:
    """One process's memory, or None when it is gone (or is a zombie, without a VmRSS line)."""
    base = Path("/proc") / str(pid)
    try:
        rss = kib_field((base / "status").read_text(), "VmRSS")
        cmdline = (base / "cmdline").read_bytes()
    except OSError:
        return None
    if rss is None:
        return None
    pss = None
    with contextlib.suppress(OSError):
        pss = kib_field((base / "smaps_rollup").read_text(), "Pss")
    return ProcessMemory(pid, ppid, short_command(cmdline, strip=f"{ROOT}/"), rss, pss)


def sample(root: int) -> list[ProcessMemory]:
    """The memory of ``root`` and every live descendant, in pid order."""
    table = procs.processes()
    found = (read_process(pid, table[pid][0]) for pid in sorted(procs.tree(root, table)))
    return [p for p in found if p is not None]


def summarize(processes: list[ProcessMemory], workers: int) -> dict[str, Any]:
    """Totals over a server's processes and the share per worker (the total over the worker count, so a
    supervisor's memory is charged to the workers it serves with); MiB, one decimal."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    rss = sum(p.rss_kib for p in processes)
    pss_known = [p.pss_kib for p in processes if p.pss_kib is not None]
    pss = sum(pss_known) if processes and len(pss_known) == len(processes) else None
    mib = lambda kib: round(kib / 1024, 1)  # noqa: E731
    return {
        "processes": len(processes),
        "workers": workers,
        "rss_mib": mib(rss),
        "pss_mib": None if pss is None else mib(pss),
        "rss_per_worker_mib": mib(rss / workers),
        "pss_per_worker_mib": None if pss is None else mib(pss / workers),
        "largest_rss_mib": mib(max((p.rss_kib for p in processes), default=0)),
        "each": [asdict(p) for p in processes],
    }
