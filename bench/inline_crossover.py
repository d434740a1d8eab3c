"""Where running a predict call on the event loop stops paying: berth's batcher, thread against inline.

    .venv/bin/python -m bench.inline_crossover            # prints a Markdown table; about a minute

A synthetic model holds the GIL for a set time per call plus a little per row (as scikit-learn's Python-level
validation does), and ``clients`` concurrent callers each send ``requests`` single-row requests through one
:class:`berth.serving.batching.Batcher`, once with every call in the model's thread and once inline. It reports
the process's CPU time per request (what bounds throughput when every core is busy; steadier than wall time on
a shared machine) and the wall time per request. No HTTP: this isolates the hand-off itself. Results:
``bench/results/inline_crossover.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from berth.serving.batching import Batcher
from berth.serving.inline import CallCost

COSTS_US = (10, 30, 100, 300, 1000, 3000)
PER_ROW_US = 1.0


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def model(cost_s: float) -> object:
    def run(parts: Sequence[int]) -> list[int]:
        spin(cost_s + PER_ROW_US * 1e-6 * len(parts))
        return list(parts)

    return run


async def drive(batcher: Batcher[int, int], clients: int, requests: int) -> None:
    async def client() -> None:
        for i in range(requests):
            await batcher.submit(i, 1)

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await batcher.close()


def run(main: Any) -> None:
    """On uvloop, as the server runs (uvicorn's ``loop="auto"``), when it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def measure(cost_s: float, inline: bool, clients: int, total: int) -> tuple[float, float]:
    """(CPU µs per request, wall µs per request), the median of three runs."""
    cpu, wall = [], []
    for _ in range(3):
        cost = CallCost(1e9 if inline else 0.0)
        cost.calibrate(cost_s)
        batcher: Batcher[int, int] = Batcher(model(cost_s), max_batch_size=64, max_delay_s=0.002,  # type: ignore[arg-type]
                                             cost=cost)
        started_cpu, started = time.process_time(), time.perf_counter()
        run(drive(batcher, clients, max(1, total // clients)))
        cpu.append((time.process_time() - started_cpu) / total * 1e6)
        wall.append((time.perf_counter() - started) / total * 1e6)
    return statistics.median(cpu), statistics.median(wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", default="", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    lines = [f"# Inline predict calls against the model's thread\n\nWritten by `python -m bench.inline_crossover` "
             f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} cores); see the module's docstring.\n"]
    lines += ["| model µs/call | clients | thread: CPU µs/req | inline: CPU µs/req | thread: wall µs/req | "
              "inline: wall µs/req |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(lines), flush=True)
    for cost_us in COSTS_US:
        total = max(200, min(args.requests, int(args.requests * 300 / cost_us)))
        for clients in (1, 64):
            thread = measure(cost_us * 1e-6, False, clients, total)
            inline = measure(cost_us * 1e-6, True, clients, total)
            lines.append(f"| {cost_us} | {clients} | {thread[0]:.0f} | {inline[0]:.0f} | {thread[1]:.0f} | "
                         f"{inline[1]:.0f} |")
            print(lines[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
