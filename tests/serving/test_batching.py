"""The batcher: concurrent callers share predict calls, each gets exactly its own rows, lone calls don't wait."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from berth.model import load
from berth.serving.batching import Batcher
from berth.serving.metrics import Metrics
from berth.serving.settings import ServeSettings
from berth.serving.slot import Runner
from tests.serving.conftest import IRIS_X


def test_concurrent_distinct_requests_get_their_own_rows() -> None:
    calls: list[int] = []

    def run(parts: Sequence[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(parts))
        stacked = np.concatenate(parts)
        doubled = stacked * 2
        out, start = [], 0
        for part in parts:
            out.append(doubled[start:start + len(part)])
            start += len(part)
        return out

    async def main() -> list[np.ndarray]:
        batcher: Batcher[np.ndarray, np.ndarray] = Batcher(run, max_batch_size=16, max_delay_s=0.01)
        requests = [np.arange(i, i + 1 + i % 3, dtype=float) for i in range(300)]
        results = await asyncio.gather(*(batcher.submit(r, len(r)) for r in requests))
        await batcher.close()
        for request, result in zip(requests, results, strict=True):
            assert (result == request * 2).all()
        return results

    asyncio.run(main())
    assert sum(calls) == 300
    assert len(calls) < 300 / 4  # requests were coalesced
    assert max(calls) <= 16


def test_a_lone_request_is_not_held_for_the_delay() -> None:
    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(lambda parts: [p + 1 for p in parts], max_batch_size=64,
                                             max_delay_s=3600)
        # nothing else is arriving, so the hour-long delay must not apply
        assert await asyncio.wait_for(batcher.submit(1, 1), timeout=60) == 2
        await batcher.close()

    asyncio.run(main())


def test_a_failing_part_fails_alone() -> None:
    def run(parts: Sequence[int]) -> list[int]:
        if any(p < 0 for p in parts):
            raise ValueError("negative")
        return [p * 10 for p in parts]

    async def main() -> list[object]:
        batcher: Batcher[int, int] = Batcher(run, max_batch_size=64, max_delay_s=0.01)
        results = await asyncio.gather(*(batcher.submit(p, 1) for p in (1, -1, 2)), return_exceptions=True)
        await batcher.close()
        return results

    one, failed, two = asyncio.run(main())
    assert (one, two) == (10, 20) and isinstance(failed, ValueError)


def test_runner_batches_real_model_rows_in_order(tmp_path: Path, iris_model: RandomForestClassifier) -> None:
    import berth

    berth.save(iris_model, tmp_path / "iris", sample=IRIS_X.head())
    model = load(tmp_path / "iris")
    runner = Runner(model, "1", ServeSettings(max_batch_size=32), Metrics())
    rows = IRIS_X.sample(120, random_state=1)

    async def main() -> list[np.ndarray]:
        answers = await asyncio.gather(*(runner.predict([row], True) for row in rows.to_numpy().tolist()))
        await runner.close()
        return answers

    answers = asyncio.run(main())
    assert [a.predictions[0] for a in answers] == iris_model.predict(rows).tolist()
    # the forest's compiled twin computes in float32: equal within the proof's 1e-5
    np.testing.assert_allclose(np.vstack([a.probabilities for a in answers]), iris_model.predict_proba(rows),
                               rtol=0, atol=1e-5)
