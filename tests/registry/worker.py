"""A registration in its own process, for the concurrency and crash tests.

    python -m tests.registry.worker URL ARTIFACTS BUNDLE NAME [GO_FILE]

Waits until GO_FILE exists (so that many workers start registering at the same moment), registers, and prints
``{"version": N, "existing": bool}``. With ``REGISTRY_TEST_FAULT=<point>`` in its environment the process ends
with ``os._exit(FAULT_EXIT)`` at that point of the registration, running no cleanup, as a SIGKILL would: the
fault is injected here, around the registry's own steps, so berth carries no test hook.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from berth.registry.artifacts import ArtifactStore
from berth.registry.store import Registry

FAULT_ENV = "REGISTRY_TEST_FAULT"
FAULT_EXIT = 86
CRASH_POINTS = ("pending", "upload", "uploaded", "verified", "commit")


def die() -> NoReturn:
    sys.stdout.flush()
    os._exit(FAULT_EXIT)


def inject_fault(point: str) -> None:
    """End the process at ``point`` of the next registration:

    ``pending``: the pending record is committed, nothing uploaded; ``upload``: the first file is uploaded;
    ``uploaded``: every file is uploaded, none read back; ``verified``: the copy is verified, no version row;
    ``commit``: the version row is written inside its transaction, which never commits.
    """
    if point not in CRASH_POINTS:
        raise SystemExit(f"unknown fault point {point!r}; one of {', '.join(CRASH_POINTS)}")
    upload, verify, commit = ArtifactStore.upload, ArtifactStore.verify, Registry._commit

    def upload_then_die(self: ArtifactStore, source: Path, location: str, manifest: Any, *args: Any,
                        **kwargs: Any) -> None:
        if point == "pending":
            die()
        if point == "upload":
            kwargs["on_file"] = lambda count: die() if count == 1 else None
        upload(self, source, location, manifest, *args, **kwargs)

    def verify_then_die(self: ArtifactStore, location: str, manifest: Any) -> None:
        if point == "uploaded":
            die()
        verify(self, location, manifest)
        if point == "verified":
            die()

    def commit_then_die(self: Registry, *args: Any, **kwargs: Any) -> Any:
        version = commit(self, *args, **kwargs)
        if point == "commit":
            die()
        return version

    ArtifactStore.upload = upload_then_die  # type: ignore[method-assign]
    ArtifactStore.verify = verify_then_die  # type: ignore[method-assign]
    Registry._commit = commit_then_die  # type: ignore[method-assign]


def main(url: str, artifacts: str, bundle: str, name: str, go: str | None = None, *,
         fault: str | None = None) -> None:
    fault = fault or os.environ.get(FAULT_ENV)
    if fault:
        inject_fault(fault)
    registry = Registry(url, artifacts)
    if go:
        deadline = time.monotonic() + 60
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    version = registry.register(bundle, name)
    print(json.dumps({"version": version.version, "existing": version.existing}))


if __name__ == "__main__":
    main(*sys.argv[1:])
