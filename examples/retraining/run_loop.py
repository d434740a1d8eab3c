"""The whole retraining loop against a real server, without restarting it:

1. train wine version 1 and register it as production; `berth serve models:/wine@production`;
2. send drifted traffic with labels (traffic.py): accuracy falls, inputs drift;
3. `berth monitor check wine --on-fail "python retrain.py"` fails and runs retrain.py, which trains version 2 on
   the logged inputs and labels, registers it and sets it as production's shadow;
4. the server picks the shadow up on its next poll; more traffic with labels: version 2 answers every request
   in the shadow too, logged under the same request ids;
5. `berth promote wine --candidate 2 --require ... --min-labels 500` passes; the server follows production to 2.

    python examples/retraining/run_loop.py WORKDIR        (uses WORKDIR/home as BERTH_HOME)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import traffic  # noqa: E402
import train_v1  # noqa: E402

BERTH = str(Path(sys.executable).parent / "berth")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def berth(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=600)
    print(f"$ berth {' '.join(args)}  -> exit {done.returncode}\n{done.stdout}{done.stderr}", flush=True)
    return done


def main(workdir: Path) -> dict[str, object]:
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["BERTH_HOME"] = str(workdir / "home")
    os.environ["BERTH_LOG_FLUSH_INTERVAL_S"] = "0.5"
    train_v1.main(workdir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([BERTH, "serve", "models:/wine@production", "--port", str(port), "--workers", "1",
                               "--poll-interval-s", "1", "--log-level", "warning"], start_new_session=True)
    try:
        wait_for(lambda: httpx.get(url + "/health/ready").status_code == 200, "the server")
        first = traffic.send(url, 400, seed=1)
        print(f"drifted traffic answered by {dict(first)}")
        time.sleep(1.5)  # the prediction log flushes every 0.5 s
        check = berth("monitor", "check", "wine", "--since", "1h", "--on-fail",
                      f"{sys.executable} {HERE / 'retrain.py'}")
        assert check.returncode == 1 and "exit status 0" in check.stdout, "the check should fail and retrain"
        wait_for(lambda: httpx.get(url + "/health/ready").json()["models"]["wine"].get("shadow", {})
                 .get("version") == "2", "the shadow on the server")
        second = traffic.send(url, 600, seed=2)
        print(f"traffic with the shadow answered by {dict(second)}")
        time.sleep(1.5)
        berth("monitor", "compare", "wine", "--baseline", "production", "--candidate", "2", "--since", "1h")
        gate = ["--require", "accuracy >= baseline + 0.05", "--require", "error_rate <= 0.01",
                "--require", "p99_ms <= 5 * baseline + 100", "--min-labels", "500", "--since", "1h"]
        promote = berth("promote", "wine", "--candidate", "2", *gate)
        assert promote.returncode == 0, "the gate should pass version 2"
        wait_for(lambda: httpx.post(url + "/predict", json={"features": traffic.drifted(1, 3)[0].iloc[0]
                                                            .to_dict()}).headers["x-berth-model-version"] == "2",
                 "the server to follow production to version 2")
        third = traffic.send(url, 100, seed=4)
        print(f"after promotion answered by {dict(third)}")
        return {"before": dict(first), "shadowed": dict(second), "after": dict(third),
                "server_pid": server.pid, "server_alive": server.poll() is None}
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
