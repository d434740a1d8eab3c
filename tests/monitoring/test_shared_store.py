"""One log shared by many processes in an object store (the loopback S3 server): unique immutable files per
writer, readers take the union, compaction safe while others read, and real servers joined in one report."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pandas as pd
import pytest

from berth.monitoring.report import build_report
from berth.monitoring.store import Store, monitor_dir
from support.server_process import ServerProcess
from tests.monitoring.conftest import FEATURES, log_rows, reference_rows, true_labels

if TYPE_CHECKING:
    from tests.s3_fixture import S3


def test_a_url_is_a_store_location_not_a_local_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BERTH_MONITOR_DIR", "s3://bucket/prefix")
    assert monitor_dir() == "s3://bucket/prefix"
    monkeypatch.setenv("BERTH_MONITOR_DIR", "memory://berth-test-logs")
    store = Store()
    assert store.remote and str(store.root) == "memory://berth-test-logs"
    assert store.probe() is None
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "memory:").exists()
    monkeypatch.delenv("BERTH_MONITOR_DIR")
    monkeypatch.setenv("BERTH_HOME", str(tmp_path / "home"))
    assert monitor_dir() == str(tmp_path / "home" / "monitoring")


def test_s3_store_round_trip_versions_prune_and_compaction(s3: S3, loaded) -> None:
    store = Store(s3.url("logs"))
    assert store.probe() is None
    now = dt.datetime.now(dt.UTC)
    old = (now - dt.timedelta(days=40)).timestamp()
    yesterday = (now - dt.timedelta(days=1)).timestamp()
    log_rows(store, loaded, reference_rows(5), start=old, prefix="old")
    for prefix in ("a", "b", "c"):
        log_rows(store, loaded, reference_rows(4), start=yesterday, prefix=prefix)
    assert store.models() == ["iris"] and list(store.versions("iris")) == ["v1"]
    assert store.read("iris").num_rows == 17
    keys = s3.list_keys("logs/iris/predictions")
    assert len(keys) == 4 and len({k.rsplit("/", 1)[1] for k in keys}) == 4
    assert store.compact("iris") == 3  # the old day's single file is left; yesterday's three become one
    keys = s3.list_keys("logs/iris/predictions")
    assert len(keys) == 2 and any("/compact-" in k for k in keys)
    assert store.read("iris").num_rows == 17
    assert store.prune("iris", dt.timedelta(days=30)) == [(now - dt.timedelta(days=40)).date().isoformat()]
    assert store.read("iris").num_rows == 12


def test_compaction_under_a_reader_loses_and_doubles_nothing(tmp_path: Path, loaded) -> None:
    """A reader lists, compaction merges and deletes those files, then the reader reads: it lists again and
    sees each row once. A reader that lists between the merged file's write and the inputs' deletion sees both,
    and keeps only the merged file."""
    store = Store(tmp_path)
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).timestamp()
    for prefix in ("a", "b", "c"):
        log_rows(store, loaded, reference_rows(4), start=yesterday, prefix=prefix)
    listing = store.files
    calls = []

    def files_then_compact(*args, **kwargs):
        found = listing(*args, **kwargs)
        calls.append(len(found))
        if len(calls) == 1:
            Store(tmp_path).compact("iris")  # another process, between this reader's listing and its reading
        return found

    store.files = files_then_compact  # type: ignore[method-assign]
    assert store.read("iris").num_rows == 12
    assert calls == [3, 1]
    # both the merged file and its inputs present (the compactor stopped between write and delete)
    store = Store(tmp_path)
    log_rows(store, loaded, reference_rows(4), start=yesterday, prefix="d")
    inputs = store.files("iris")
    original_rm = store.fs.rm_file
    store.fs.rm_file = lambda path: None  # type: ignore[method-assign]
    store.compact("iris")
    store.fs.rm_file = original_rm  # type: ignore[method-assign]
    on_disk = sorted(p.name for p in tmp_path.glob("iris/predictions/*/*.parquet"))
    assert len(on_disk) == len(inputs) + 1
    assert Store(tmp_path).read("iris").num_rows == 16


def test_compaction_while_writers_write_loses_and_doubles_nothing(tmp_path: Path, loaded) -> None:
    """Two writers keep adding files to a finished day (late flushes) while compaction runs again and again and a
    reader counts: every row written is read exactly once, during and after."""
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).replace(hour=12).timestamp()
    batches, rows_per_batch = 12, 3
    failures: list[BaseException] = []
    done = threading.Event()

    def writer(name: str) -> None:
        try:
            for batch in range(batches):
                log_rows(Store(tmp_path), loaded, reference_rows(rows_per_batch, seed=batch),
                         start=yesterday + batch, prefix=f"{name}{batch}-")
        except BaseException as error:
            failures.append(error)

    def compactor() -> None:
        try:
            while not done.is_set():
                Store(tmp_path).compact("iris")
        except BaseException as error:
            failures.append(error)

    writers = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    background = threading.Thread(target=compactor)
    background.start()
    for thread in writers:
        thread.start()
    seen: list[int] = []
    while any(thread.is_alive() for thread in writers):
        table = Store(tmp_path).read("iris")
        ids = table.column("request_id").to_pylist() if table.num_rows else []
        assert len(ids) == len(set(ids)), "a reader saw a row twice while compaction ran"
        seen.append(len(ids))
    for thread in writers:
        thread.join()
    done.set()
    background.join()
    assert not failures, failures
    Store(tmp_path).compact("iris")
    table = Store(tmp_path).read("iris")
    ids = table.column("request_id").to_pylist()
    assert len(ids) == len(set(ids)) == 2 * batches * rows_per_batch
    assert seen == sorted(seen), "a reader saw fewer rows than an earlier reader: compaction lost some for a while"
    assert len(list(tmp_path.glob("iris/predictions/*/*.parquet"))) == 1


def server_env(url: str) -> dict[str, str]:
    env = dict(os.environ)  # the s3 fixture's endpoint and dummy credentials
    env.update(BERTH_MONITOR_DIR=url, BERTH_WORKERS="1", BERTH_LOG_FLUSH_INTERVAL_S="0.3", BERTH_DRIFT_INTERVAL_S="0")
    return env


@pytest.mark.slow
def test_servers_share_one_log_and_labels_join_across_pods(s3: S3, iris_bundle: Path, iris_model) -> None:
    """Three real server processes write to one S3 prefix; labels for one pod's predictions are posted to
    another; one report over the store sees every prediction and joins every label."""
    url = s3.url("shared")
    servers = [ServerProcess(str(iris_bundle), env=server_env(url)) for _ in range(3)]
    rows = reference_rows(30, seed=3)
    labels = true_labels(rows)
    try:
        for server in servers:
            server.wait_ready()
        with httpx.Client(timeout=20) as client:
            for i, row in enumerate(rows):  # request i goes to pod i % 3
                response = client.post(servers[i % 3].url + "/predict", json={"instances": [row.tolist()],
                                                                               "probabilities": True},
                                       headers={"x-request-id": f"req-{i}"})
                assert response.status_code == 200, response.text
            for i, label in enumerate(labels):  # and its label to pod (i + 1) % 3
                response = client.post(servers[(i + 1) % 3].url + "/feedback",
                                       json={"request_id": f"req-{i}", "label": label})
                assert response.status_code == 200, response.text
    finally:
        outputs = []
        for server in servers:
            server.stop()
            outputs.append(server.output())
    for output in outputs:
        assert f"prediction log: writing to {url}" in output, output
    keys = s3.list_keys("shared/iris/predictions")
    writers = {key.rsplit("/", 1)[1].split("-")[-2] for key in keys}  # the pid in each file name
    assert len(writers) == 3, keys
    assert len(s3.list_keys("shared/iris/feedback")) <= 3 * 2  # batched: a few files per pod, not one per POST
    report = build_report("iris", since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), store=Store(url))
    assert report["rows"] == 30
    performance = report["performance"]
    assert performance["labelled"] == 30
    expected = float((iris_model.predict(pd.DataFrame(rows, columns=FEATURES)) == labels).mean())
    assert performance["overall"]["accuracy"] == pytest.approx(expected)
    assert performance["overall"]["roc_auc"] is not None


def test_compact_command(tmp_path: Path, loaded) -> None:
    from typer.testing import CliRunner

    from berth.cli import app

    store = Store(tmp_path)
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).timestamp()
    for prefix in ("a", "b"):
        log_rows(store, loaded, reference_rows(3), start=yesterday, prefix=prefix)
    result = CliRunner().invoke(app, ["monitor", "compact", "iris", "--monitor-dir", str(tmp_path)])
    assert (result.exit_code, result.output.strip()) == (0, "compacted 2 file(s) of iris")
    assert len(store.files("iris")) == 1 and store.read("iris").num_rows == 6
