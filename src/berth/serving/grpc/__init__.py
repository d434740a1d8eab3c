"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), an optional extra (``berth[grpc]``).

``inference.proto`` is the service definition; ``inference_pb2*.py`` are generated from it by
``scripts/gen-grpc`` and committed. Nothing here is imported unless ``--grpc-port`` is set, so a server without
gRPC never loads grpcio or protobuf.
"""

from __future__ import annotations

from typing import Any

from berth.errors import UsageError


async def start(plane: Any, metrics: Any, recorder: Any, settings: Any) -> tuple[Any, int]:
    """Start the gRPC server in the running event loop: ``(server, port)``; a clear error without grpcio."""
    try:
        from berth.serving.grpc.service import start as start_service
    except ImportError as exc:
        raise UsageError(f"--grpc-port needs the grpc extra: pip install 'berth[grpc]' ({exc})") from None
    return await start_service(plane, metrics, recorder, settings)
