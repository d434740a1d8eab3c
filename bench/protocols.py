"""Open Inference Protocol transports side by side: JSON, the binary tensor data extension, and gRPC.

    .venv/bin/python -m bench.protocols                  # writes bench/results/protocols.md
    .venv/bin/python -m bench.protocols --calls 50       # a quicker run

One ``berth serve --workers 1 --grpc-port`` of a RandomForestClassifier(100) on iris; for each batch size the
three clients take turns call by call (so background load hits them alike): V2 JSON through httpx (the body a
hand-written client sends), ``tritonclient.http`` at its defaults (binary tensors in and out) and
``tritonclient.grpc`` (raw contents). Reported: median and p90 client latency, request bytes on the wire, and
the ratio of each median to JSON's in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from support.ports import free_port
from support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "protocols.md"


def make_bundle(work: Path) -> tuple[Path, np.ndarray]:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    berth.save(model, work / "iris", sample=X.head(20), name="iris", overwrite=True)
    return work / "iris", X.to_numpy()


def clients(server: ServerProcess, grpc_url: str, rows: np.ndarray) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (one call, request bytes)."""
    import httpx
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    body = json.dumps({"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                                   "data": rows.tolist()}]}).encode()
    session = httpx.Client(base_url=server.url)

    def v2_json() -> Any:
        response = session.post("/v2/models/iris/infer", content=body, headers={"content-type": "application/json"})
        response.raise_for_status()
        return response.json()["outputs"][0]["data"]

    http = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    http_input = httpclient.InferInput("input-0", list(rows.shape), "FP64")
    http_input.set_data_from_numpy(rows)

    def v2_binary() -> Any:
        return http.infer("iris", [http_input]).as_numpy("predict")

    grpc = grpcclient.InferenceServerClient(grpc_url)
    grpc_input = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    grpc_input.set_data_from_numpy(rows)

    def v2_grpc() -> Any:
        return grpc.infer("iris", [grpc_input]).as_numpy("predict")

    header = len(json.dumps({"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                                         "parameters": {"binary_data_size": rows.nbytes}}]}))
    return {"V2 JSON (httpx)": (v2_json, len(body)),
            "V2 binary (tritonclient.http defaults)": (v2_binary, header + rows.nbytes),
            "gRPC (tritonclient.grpc)": (v2_grpc, rows.nbytes + 60)}


def measure(calls: dict[str, tuple[Callable[[], Any], int]], count: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in calls}
    answers = {name: np.asarray(call()).tolist() for name, (call, _) in calls.items()}  # warm up, and compare
    assert len({json.dumps(a) for a in answers.values()}) == 1, "the transports disagree"
    for _ in range(count):
        for name, (call, _) in calls.items():
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per transport and batch size")
    parser.add_argument("--batches", default="1,100,2000", help="rows per request, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-bench-protocols-") as scratch:
        bundle, X = make_bundle(Path(scratch))
        grpc_port = free_port()
        server = ServerProcess(str(bundle), "--workers", "1", "--grpc-port", str(grpc_port),
                               "--no-log-predictions", "--max-body-mb", "50")
        lines = []
        try:
            server.wait_ready()
            for size in (int(b) for b in args.batches.split(",")):
                rows = np.resize(X, (size, X.shape[1])).astype(np.float64)
                calls = clients(server, f"127.0.0.1:{grpc_port}", rows)
                timings = measure(calls, args.calls)
                base = statistics.median(timings["V2 JSON (httpx)"])
                for name, values in timings.items():
                    median = statistics.median(values)
                    p90 = statistics.quantiles(values, n=10)[-1]
                    lines.append(f"| {size} | {name} | {median * 1000:.2f} | {p90 * 1000:.2f} | "
                                 f"{calls[name][1]:,} | {median / base:.2f} |")
                print("\n".join(lines[-3:]), flush=True)
        finally:
            server.stop()
    RESULTS.write_text("\n".join([
        "# Open Inference Protocol transports",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {platform.python_version()}; "
        f"`python -m bench.protocols --calls {args.calls} --batches {args.batches}`. One worker, iris "
        "RandomForestClassifier(100), FP64 input `[rows, 4]`, output `predict`; the clients alternate call by call. "
        "Request bytes are the body (gRPC: the raw tensor plus about 60 bytes of message). Load average at the "
        f"end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other programs' load shows in the p90).",
        "",
        "| rows | transport | median ms | p90 ms | request bytes | median vs JSON |",
        "| --- | --- | --- | --- | --- | --- |",
        *lines,
        "",
    ]))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
