"""Connecting to Ray: a local instance sized for this machine, or an existing cluster by address.

Ray is an optional extra (``pip install 'berth[ray]'``) and is imported only here, on the paths that use it.
A local instance is started with the dashboard off and usage statistics off, with as many CPUs as the machine
has, and is shut down when the block ends; a cluster reached by address is only disconnected from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from berth.errors import UsageError

log = logging.getLogger("berth.ray")
INSTALL_HINT = "pip install 'berth[ray]'"


def import_ray() -> ModuleType:
    """``ray``, or a UsageError saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before the first import: ray reads it early
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"the Ray backend needs Ray, which is not installed ({exc.msg}): {INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_instance(address: str | None = None, *, num_cpus: int | None = None,
                 runtime_env: dict[str, object] | None = None) -> Iterator[bool]:
    """Connect to the cluster at ``address``, or start a local instance; yields whether it is a local one.

    A local instance gets ``num_cpus`` logical CPUs (default: the machine's cores), no dashboard, warnings-only
    logging, and is shut down at the end. An address is ``ray://host:10001`` (Ray Client) or ``host:6379`` /
    ``auto`` (this machine is a node of the cluster).
    """
    ray = import_ray()
    local = address is None
    if ray.is_initialized():
        yield local  # someone (a test, a notebook) already connected: use that, and leave it connected
        return
    try:
        if local:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False, runtime_env=runtime_env)
        else:
            ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise UsageError(f"cannot connect to {where}: {exc}") from exc
    log.info("connected to %s", "a local Ray instance" if local else address)
    try:
        yield local
    finally:
        ray.shutdown()
