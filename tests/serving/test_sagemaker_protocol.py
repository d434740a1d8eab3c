"""``/invocations`` as SageMaker (batch transform and real-time endpoints) uses it: headerless CSV, JSON Lines, and
answers in the format of the Accept header."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
from sklearn.ensemble import RandomForestClassifier

from berth.errors import NotAcceptableError
from berth.serving.protocols.sagemaker import answer_format
from tests.serving.conftest import IRIS_X, TestClient, expected

ROWS = IRIS_X.iloc[[0, 60, 120]].to_numpy().tolist()
NAMES = list(IRIS_X.columns)


def csv_lines(rows: list[list[float]], header: list[str] | None = None) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


def test_headerless_csv_as_batch_transform_sends_it(client: TestClient, iris_model: RandomForestClassifier) -> None:
    """SplitType=Line, ContentType=text/csv: no header line, one record per line (here a mini-batch of 3)."""
    response = client.post("/invocations", content=csv_lines(ROWS), headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected(iris_model, ROWS)}


def test_one_headerless_line(client: TestClient, iris_model: RandomForestClassifier) -> None:
    response = client.post("/invocations", content=b"5.1,3.5,1.4,0.2", headers={"content-type": "text/csv"})
    assert response.json() == {"predictions": expected(iris_model, [[5.1, 3.5, 1.4, 0.2]])}


def test_a_header_is_recognised_only_when_it_names_the_columns(client: TestClient,
                                                               iris_model: RandomForestClassifier) -> None:
    with_header = client.post("/invocations", content=csv_lines(ROWS, NAMES), headers={"content-type": "text/csv"})
    assert with_header.json() == {"predictions": expected(iris_model, ROWS)}
    reordered = [NAMES[3], *NAMES[:3]]
    rows = [[row[3], *row[:3]] for row in ROWS]
    response = client.post("/invocations", content=csv_lines(rows, reordered), headers={"content-type": "text/csv"})
    assert response.json() == {"predictions": expected(iris_model, ROWS)}
    other = client.post("/invocations", content=csv_lines(ROWS, ["a", "b", "c", "d"]),
                        headers={"content-type": "text/csv"})
    assert other.status_code == 422  # 'a' is then a value of a numeric column


def test_csv_of_the_wrong_width_names_the_columns(client: TestClient) -> None:
    response = client.post("/invocations", content=b"5.1,3.5,1.4\n6.0,2.2,4.0\n", headers={"content-type": "text/csv"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "3 fields" in message and "sepal length (cm)" in message and "header" in message


def test_json_lines_as_batch_transform_sends_them(client: TestClient, iris_model: RandomForestClassifier) -> None:
    """ContentType=application/jsonlines: a row, a record or SageMaker's {"features": [...]} per line."""
    lines = [orjson.dumps(ROWS[0]), orjson.dumps(dict(zip(NAMES, ROWS[1], strict=True))),
             orjson.dumps({"features": ROWS[2]}), b""]
    response = client.post("/invocations", content=b"\n".join(lines),
                           headers={"content-type": "application/jsonlines"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected(iris_model, ROWS)}


@pytest.mark.parametrize(("body", "fragment"), [
    (b'[5.1, 3.5, 1.4, 0.2]\n{"broken": \n', "line 2 is not valid JSON"),
    (b"5.1\n", "line 1: expected a JSON array"),
    (b"\n\n", "empty JSON Lines body"),
])
def test_bad_json_lines(client: TestClient, body: bytes, fragment: str) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": "application/jsonlines"})
    assert response.status_code == 400 and fragment in response.json()["error"]["message"]


@pytest.mark.parametrize(("accept", "content_type"), [
    ("text/csv", "text/csv"),
    ("application/jsonlines", "application/jsonlines"),
    ("application/json", "application/json"),
    ("*/*", "application/json"),
    ("text/html;q=0.9, text/csv;q=0.5", "text/csv"),
    ("application/jsonlines;q=0.2, text/csv;q=0.8", "text/csv"),
])
def test_answers_in_the_format_accept_asks_for(client: TestClient, iris_model: RandomForestClassifier, accept: str,
                                               content_type: str) -> None:
    response = client.post("/invocations", content=csv_lines(ROWS), headers={"content-type": "text/csv",
                                                                              "accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(content_type)
    labels = expected(iris_model, ROWS)
    if content_type == "text/csv":
        assert response.text == "".join(f"{label}\n" for label in labels)
    elif content_type == "application/jsonlines":
        assert [orjson.loads(line) for line in response.content.splitlines()] == labels
    else:
        assert response.json() == {"predictions": labels}
    assert response.headers["x-berth-model"] == "iris"


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png, text/plain", "text/csv;q=0"])
def test_an_accept_berth_cannot_produce_is_406(client: TestClient, accept: str) -> None:
    response = client.post("/invocations", content=csv_lines(ROWS), headers={"content-type": "text/csv",
                                                                              "accept": accept})
    assert response.status_code == 406
    error = response.json()["error"]
    assert error["code"] == "not_acceptable" and "text/csv" in error["message"]
    assert error["details"][0]["loc"] == ["header", "accept"]


def test_accept_parsing() -> None:
    assert answer_format(None) == answer_format("") == "json"
    assert answer_format("application/*") == "json"
    assert answer_format("text/*") == "csv"
    assert answer_format("application/JSONLINES") == "jsonlines"
    with pytest.raises(NotAcceptableError):
        answer_format("application/x-npy")


def test_probability_rows_as_csv_lines() -> None:
    import numpy as np

    from berth.serving.protocols.sagemaker import encode

    response = encode(np.array([[0.25, 0.75], [1.0, 0.0]]), "csv")
    assert response.body == b"0.25,0.75\n1.0,0.0\n"
    strings = encode(np.array(["a,b", "c"]), "csv")
    assert strings.body == b'"a,b"\nc\n'
