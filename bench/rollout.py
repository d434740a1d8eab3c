"""Live rollout under load: how fast servers follow an alias, and how many requests fail while they do.

    .venv/bin/python -m bench.rollout [--workers 2] [--clients 8] [--poll-interval 0.5] [--moves 5]
                                      [--output bench/results/rollout.md]

A real ``berth serve models:/iris@production`` (SQLite registry and file artifact store in a temporary
BERTH_HOME) answers a steady stream of single-row requests from several client threads while the alias moves
forward and back between three registered versions. For every move it reports the follow latency (from the
alias move to the last request that an older version answered: every request sent later is answered by the new
version on every worker; requests in flight at the swap finish on the version they started on), next to the poll
interval plus the version's load time (from the server's own ``berth_model_load_seconds``), and it counts
failed requests and answers from versions the alias never held. ``tests/e2e/test_rollout_under_load.py`` runs
the same scenario and asserts on it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from support.rollout import MOVES, Scenario, run_scenario

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "rollout.md"
def render(scenario: Scenario, started: str, seconds: float) -> str:
    answered = len(scenario.answers)
    span = max(a.received for a in scenario.answers) - min(a.sent for a in scenario.answers)
    follows = [m.follow_s for m in scenario.moves if m.follow_s is not None]
    lines = [
        "# Live rollout under load",
        "",
        f"Written by `python -m bench.rollout` on {started} ({seconds:.0f} s). Machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        "",
        f"`berth serve models:/iris@production --workers {scenario.workers} --poll-interval-s "
        f"{scenario.poll_interval_s:g}` (SQLite registry, file artifact store), {scenario.clients} client threads "
        "sending single-row `POST /predict` requests back to back (keep-alive) while the alias moves. Follow "
        "latency: from the alias move to the sending of the last request an older version answered (every "
        "request sent later got the new version, from every worker; requests in flight at the swap finish on "
        "their version); the registry issue's bound is the poll interval plus the version's load time.",
        "",
        "| move | to version | follow latency s | poll + load s | within |",
        "| ---: | ---: | ---: | ---: | :---: |",
    ]
    for number, move in enumerate(scenario.moves, start=1):
        bound = scenario.poll_interval_s + (move.load_s or 0.0)
        within = "✓" if move.follow_s is not None and move.follow_s <= bound else "✗"
        lines.append(f"| {number} | {move.to} | {move.follow_s:.2f} | {bound:.2f} | {within} |")
    lines += [
        "",
        f"- requests answered: {answered:,} in {span:.1f} s ({answered / span:,.0f} req/s)",
        f"- requests failed (non-200 or transport error): **{len(scenario.failed)}**",
        f"- answers from a version the alias never held: **{len(scenario.strays())}**",
        f"- follow latency: median {statistics.median(follows):.2f} s, max {max(follows):.2f} s",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--moves", type=int, default=5, choices=range(1, len(MOVES) + 1))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    started, began = datetime.now(UTC).isoformat(timespec="seconds"), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="berth-rollout-") as home:
        scenario = run_scenario(Path(home), workers=args.workers, clients=args.clients,
                                poll_interval_s=args.poll_interval, moves=args.moves)
    report = render(scenario, started, time.monotonic() - began)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    return 0 if not scenario.failed and not scenario.strays() else 1


if __name__ == "__main__":
    sys.exit(main())
