"""Send drifted wine measurements to a server, one row per request, and their true classes to POST /feedback.

    python examples/retraining/traffic.py http://127.0.0.1:8000 500 [SEED]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from wine import drifted


def send(url: str, n: int, seed: int) -> Counter[str]:
    """Returns how many answers each version gave; every request must succeed."""
    rows, labels = drifted(n, seed)
    versions: Counter[str] = Counter()
    feedback = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, record in enumerate(rows.to_dict("records")):
            request_id = f"s{seed}-{i}"
            response = client.post("/predict", json={"features": record}, headers={"x-request-id": request_id})
            response.raise_for_status()
            versions[response.headers["x-berth-model-version"]] += 1
            feedback.append({"request_id": request_id, "label": int(labels[i])})
            if len(feedback) == 100 or i == n - 1:
                client.post("/feedback", json=feedback).raise_for_status()
                feedback = []
    return versions


if __name__ == "__main__":
    print(dict(send(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)))
