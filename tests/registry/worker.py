"""A registration in its own process, for the concurrency and crash tests.

    python -m tests.registry.worker URL ARTIFACTS BUNDLE NAME [GO_FILE]

Waits until GO_FILE exists (so that many workers start registering at the same moment), registers, and prints
``{"version": N, "existing": bool}``. ``BERTH_REGISTRY_FAULT`` makes it die at a named point.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from berth.registry.store import Registry


def main(url: str, artifacts: str, bundle: str, name: str, go: str | None = None) -> None:
    registry = Registry(url, artifacts)
    if go:
        deadline = time.monotonic() + 60
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    version = registry.register(bundle, name)
    print(json.dumps({"version": version.version, "existing": version.existing}))


if __name__ == "__main__":
    main(*sys.argv[1:])
