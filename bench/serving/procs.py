"""Processes of the serving benchmark: servers started in their own process group and stopped with their whole
tree, HTTP probes, and where the machine's CPU time goes (read from /proc)."""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.serving.common import HOST, ROOT, STOP_TIMEOUT_S, log

_LIVE: list[Server] = []


class Server:
    """One server under test: a command started in its own session (process group), logged to a file."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.argv, self.env, self.cwd, self.log_path = argv, env, cwd, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.monotonic() just before the process was started

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            out.write(f"$ {shlex.join(self.argv)}\n".encode())
            out.flush()
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        _LIVE.append(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> float:
        """SIGTERM to the server's process group, SIGKILL to whatever of its process tree is left after
        STOP_TIMEOUT_S (the tree, not only the group: some servers start workers in sessions of their own).
        Returns the seconds it took."""
        if self.proc is None:
            return 0.0
        started = time.monotonic()
        leader = self.proc.pid
        seen = tree(leader) | {leader}
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, signal.SIGTERM)
        deadline = started + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            self.proc.poll()
            table = processes()
            seen |= tree(leader, table)
            if not any(pid in table and table[pid][1] != "Z" for pid in seen):
                break
            time.sleep(0.1)
        else:
            log(f"still running {STOP_TIMEOUT_S:.0f} s after SIGTERM, killing: {shlex.join(self.argv[:3])} ...")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(leader, signal.SIGKILL)
            for pid in seen | tree(leader):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self in _LIVE:
            _LIVE.remove(self)
        return time.monotonic() - started


def stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: servers get stopped


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(server: Server, url: str, method: str, body: bytes | None, timeout: float,
               interval: float = 0.25) -> float:
    """Poll ``url`` every ``interval`` seconds until it answers 200; returns the seconds since the server's
    process was started (so a cold start counts the interpreter's start too)."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        if not server.alive():
            raise RuntimeError(f"exited with code {server.proc.returncode if server.proc else '?'} before ready; "
                               f"see {server.log_path.relative_to(ROOT)}")
        try:
            status, _ = http(method, url, body, timeout=5)
            if status == 200:
                return time.monotonic() - server.started_at
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(interval)
    raise RuntimeError(f"not ready after {timeout:.0f} s ({last}); see {server.log_path.relative_to(ROOT)}")


# --------------------------------------------------------------------------------------------- load

_TICK = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def processes() -> dict[int, tuple[int, str, float]]:
    """Every process on the machine: pid -> (parent pid, state, CPU seconds incl. reaped children)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(rest[1]), rest[0], sum(int(x) for x in rest[11:15]) / _TICK)
    return table


def tree(root: int, table: dict[int, tuple[int, str, float]] | None = None) -> set[int]:
    """``root`` and all its live descendants (BentoML's workers, for one, start sessions of their own)."""
    table = processes() if table is None else table
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and table[pid][1] != "Z" and pid not in found:
            found.add(pid)
            todo += [child for child, (parent, _, _) in table.items() if parent == pid]
    return found


def tree_cpu_s(root: int) -> float:
    table = processes()
    return sum(table[pid][2] for pid in tree(root, table))


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime



def wait_quiet(limit_s: float, threshold: float = 0.2) -> float:
    """Wait (up to ``limit_s``) until other programs use less than ``threshold`` cores over 2 s; returns the
    cores they used in the last sample. Other sessions' test suites on this 2-core machine skew every number."""
    deadline = time.monotonic() + limit_s
    while True:
        before = (time.monotonic(), busy_cpu_s(), self_cpu_s() + children_cpu_s())
        time.sleep(2)
        after = (time.monotonic(), busy_cpu_s(), self_cpu_s() + children_cpu_s())
        other = max(0.0, after[1] - before[1] - (after[2] - before[2])) / (after[0] - before[0])
        if other < threshold or time.monotonic() >= deadline:
            return round(other, 2)
        log(f"other programs use {other:.2f} cores; waiting for a quieter machine "
            f"(up to {deadline - time.monotonic():.0f} s more)")
        time.sleep(3)

