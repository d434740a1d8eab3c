"""BentoML services for the serving benchmark: the same joblib model, with and without adaptive batching.

    MODEL_PATH=iris_model.joblib bentoml serve bento_service:IrisBatched --port 3000
    MODEL_PATH=iris_model.joblib bentoml serve bento_service:IrisPlain --port 3000

Both answer ``POST /predict``. ``IrisBatched`` takes a batch ``{"features": [[5.1, 3.5, 1.4, 0.2]]}`` (a client
sends one row; BentoML's dispatcher merges concurrent requests along axis 0, up to 64 rows, into one
``predict`` call). ``IrisPlain`` takes one row ``{"features": [5.1, 3.5, 1.4, 0.2]}`` and predicts it alone.
Both run BentoML's defaults otherwise: one worker process, one thread for the sync API.
"""

import os

import bentoml
import joblib
import numpy as np

MODEL_PATH = os.environ.get("MODEL_PATH", "iris_model.joblib")


@bentoml.service
class IrisBatched:
    def __init__(self) -> None:
        self.model = joblib.load(MODEL_PATH)

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=64)
    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(features)


@bentoml.service
class IrisPlain:
    def __init__(self) -> None:
        self.model = joblib.load(MODEL_PATH)

    @bentoml.api
    def predict(self, features: list[float]) -> dict:
        return {"prediction": self.model.predict([features]).tolist()[0]}
