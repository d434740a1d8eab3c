"""Run ``berth ARGS...`` in this process and, once ``GET /health/ready`` answers 200, write the names of the
modules in ``sys.modules`` to a JSON file: what a real server imported before it was ready.

    python support/modules_at_ready.py OUT.json serve BUNDLE --workers 1 --host 127.0.0.1 --port PORT

For tests (tests/e2e/test_cold_imports.py), not for production: nothing in berth reads or writes the file.
The watcher is a daemon thread using only the standard library's HTTP client; the file is written once, then
the server goes on serving until it is stopped. With ``--workers`` above 1 the models load in worker processes
this wrapper does not see, so use it with ``--workers 1``.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time


def ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def watch(port: int, output: str) -> None:
    while not ready(port):
        time.sleep(0.05)
    partial = output + ".tmp"
    with open(partial, "w") as handle:
        json.dump(sorted(sys.modules), handle)
    os.replace(partial, output)


def main() -> None:
    output, args = sys.argv[1], sys.argv[2:]
    port = int(args[args.index("--port") + 1])
    threading.Thread(target=watch, args=(port, output), name="modules-at-ready", daemon=True).start()
    from berth.cli import main as berth_main

    sys.argv = ["berth", *args]
    berth_main()


if __name__ == "__main__":
    main()
