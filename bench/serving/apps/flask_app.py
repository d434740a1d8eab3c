"""The tutorial's model server: Flask, a joblib model loaded at start, ``POST /predict``.

This is the shape found in most "deploy your model with Flask" tutorials, kept as is so the benchmark
measures what people actually run:

    MODEL_PATH=iris_model.joblib flask --app flask_app run            # Flask's own (development) server
    MODEL_PATH=iris_model.joblib gunicorn -w 2 flask_app:app          # the same app under gunicorn

Request ``{"features": [5.1, 3.5, 1.4, 0.2]}``, answer ``{"prediction": 0}``.
"""

import os

import joblib
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load(os.environ.get("MODEL_PATH", "iris_model.joblib"))


@app.route("/predict", methods=["POST"])
def predict():
    data = request.get_json()
    prediction = model.predict([data["features"]])
    return jsonify({"prediction": prediction.tolist()[0]})


if __name__ == "__main__":
    app.run()
