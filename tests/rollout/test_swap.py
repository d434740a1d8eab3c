"""Swapping a slot's runner: a request pinned to the old runner finishes on it, even if it had not reached the
batcher yet when the swap happened; the old runner closes only after that."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import berth
from berth.errors import NotReadyError
from berth.serving.metrics import Metrics
from berth.serving.settings import ServeSettings
from berth.serving.slot import ModelSlot, start_runner
from tests.serving.conftest import ROW


def test_a_pinned_request_keeps_its_runner_across_a_swap(iris_forest_bundle: Path) -> None:
    model = berth.load(iris_forest_bundle)
    settings, metrics = ServeSettings(), Metrics()

    async def scenario() -> None:
        slot = ModelSlot.load("iris", model, "1", settings, metrics, 0.0)
        view = slot.pin()  # arrived, still decoding its body
        old = slot.swap(start_runner("iris", model, "2", settings, metrics, 0.0))
        retiring = asyncio.get_running_loop().create_task(old.retire(grace_s=30))
        await asyncio.sleep(0.2)
        assert not retiring.done()  # waits for the pinned request
        prediction = await view.runner.predict([ROW])
        assert prediction.predictions.tolist() == model.predict([ROW]).tolist()
        assert view.runner.version == "1" and slot.runner.version == "2"
        view.release()
        await asyncio.wait_for(retiring, 5)
        assert old.batcher.closed
        with pytest.raises(NotReadyError, match="retired"):
            await old.predict([ROW])
        assert (await slot.pin().runner.predict([ROW])).predictions.tolist() == prediction.predictions.tolist()
        await slot.runner.close()

    asyncio.run(scenario())
