"""The serving benchmark's pure parts: wrk's output, memory from /proc, medians of cold starts, berth's twin
detection, which servers run, and the targets table. The benchmark itself is run by hand (bench/serving)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from bench.serving import coldstart, memory, models, report, servers, targets
from bench.serving.loadgen import parse_wrk
from bench.serving.run import chosen, parse_args

WRK_LINE = ('BENCH_JSON {"requests": 5000, "duration_us": 2000000, "bytes": 1, "errors": {"connect": 1, "read": 2, '
            '"write": 0, "status": 7, "timeout": 3}, "latency_us": {"min": 100, "mean": 400.0, "stdev": 1.0, '
            '"p50": 350, "p90": 600, "p99": 1500, "p999": 2000, "max": 2500}}')


def test_parse_wrk_reads_the_bench_json_line() -> None:
    out = parse_wrk(f"Running 2s test\n{WRK_LINE}\nRequests/sec: 2500\n", connections=16)
    assert out["concurrency"] == 16
    assert out["rps"] == 2500.0
    assert (out["p50_ms"], out["p90_ms"], out["p99_ms"], out["max_ms"]) == (0.35, 0.6, 1.5, 2.5)
    assert out["non_2xx"] == 7
    assert out["socket_errors"] == 6


def test_parse_wrk_refuses_output_without_its_line_or_with_a_field_missing() -> None:
    with pytest.raises(ValueError, match="no BENCH_JSON"):
        parse_wrk("Running 2s test\nRequests/sec: 2500\n", 1)
    broken = json.loads(WRK_LINE.removeprefix("BENCH_JSON "))
    del broken["latency_us"]
    with pytest.raises(ValueError, match="latency_us"):
        parse_wrk("BENCH_JSON " + json.dumps(broken), 1)


def test_kib_field_reads_proc_lines() -> None:
    status = "Name:\tpython\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t4\n"
    assert memory.kib_field(status, "VmRSS") == 51200
    assert memory.kib_field(status, "VmSwap") is None
    assert memory.kib_field(status, "Threads") == 4  # a plain count, no unit
    assert memory.kib_field("Rss:   12 kB\nPss:   7 kB\n", "Pss") == 7
    assert memory.kib_field("VmRSS:\t12 MB\n", "VmRSS") is None  # another unit is not taken for kB


def test_short_command_keeps_the_base_name_and_bounds_the_length() -> None:
    assert memory.short_command(b"/x/.venv/bin/python\0-m\0berth\0serve\0") == "python -m berth serve"
    assert memory.short_command(b"") == "?"
    assert memory.short_command(b"/r/.venv/bin/python\0/r/.venv/bin/berth\0serve\0/r/b\0", strip="/r/") == (
        "python .venv/bin/berth serve b")
    long = memory.short_command(b"/bin/prog\0" + b"a" * 500, limit=40)
    assert len(long) == 40 and long.endswith("…")


def test_summarize_totals_and_shares_per_worker() -> None:
    procs = [memory.ProcessMemory(1, 0, "supervisor", 100 * 1024, 60 * 1024),
             memory.ProcessMemory(2, 1, "worker", 300 * 1024, 200 * 1024),
             memory.ProcessMemory(3, 1, "worker", 300 * 1024, 180 * 1024)]
    out = memory.summarize(procs, workers=2)
    assert out["processes"] == 3
    assert out["rss_mib"] == 700.0 and out["pss_mib"] == 440.0
    assert out["rss_per_worker_mib"] == 350.0 and out["pss_per_worker_mib"] == 220.0
    assert out["largest_rss_mib"] == 300.0
    assert [p["pid"] for p in out["each"]] == [1, 2, 3]


def test_summarize_without_every_pss_gives_no_pss_and_refuses_zero_workers() -> None:
    procs = [memory.ProcessMemory(1, 0, "a", 1024, 512), memory.ProcessMemory(2, 1, "b", 1024, None)]
    out = memory.summarize(procs, workers=1)
    assert out["pss_mib"] is None and out["pss_per_worker_mib"] is None
    assert out["rss_mib"] == 2.0
    with pytest.raises(ValueError):
        memory.summarize(procs, workers=0)


def test_sample_reads_this_process_from_proc() -> None:
    found = memory.sample(os.getpid())
    mine = next(p for p in found if p.pid == os.getpid())
    assert mine.rss_kib > 1024  # a Python interpreter with pytest loaded holds more than 1 MiB
    assert "python" in mine.name or "pytest" in mine.name


def test_median_summary() -> None:
    assert coldstart.median_summary([]) is None
    assert coldstart.median_summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0,
                                                          "runs": [3.0, 1.0, 2.0]}
    assert coldstart.median_summary([1.0, 2.0, 4.0, 10.0])["median"] == 3.0  # type: ignore[index]


def test_save_accepts_compile_only_for_a_named_parameter() -> None:
    def with_compile(model: Any, path: str, *, compile: bool = True, **options: Any) -> None: ...

    def without(model: Any, path: str, *, overwrite: bool = False, **options: Any) -> None: ...

    def positional(model: Any, path: str, compile: bool = True) -> None: ...

    assert models.save_accepts_compile(with_compile)
    assert models.save_accepts_compile(positional)
    assert not models.save_accepts_compile(without)  # **options go to the flavor, not to berth


def test_twin_summary_quotes_what_the_manifest_says() -> None:
    assert models.twin_summary({"name": "iris", "flavor": "sklearn"}) is None
    assert models.twin_summary({"compiled": {"runtime": "onnxruntime", "rows": 2000}}) == (
        'compiled: {"rows": 2000, "runtime": "onnxruntime"}')
    assert models.twin_summary({"model": {"twin": None}}) == "model.twin: null"
    cut = models.twin_summary({"compile_proof": "x" * 1000}, limit=50)
    assert cut is not None and len(cut) == 50 and cut.endswith("…")


def test_both_bundles_are_saved_when_berth_save_takes_compile(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    import berth

    calls: list[dict[str, Any]] = []

    def save(model: Any, path: Any, *, sample: Any = None, reference: Any = None, name: str | None = None,
             overwrite: bool = False, compile: bool = True) -> None:
        calls.append({"path": path, "compile": compile})
        path.mkdir(parents=True, exist_ok=True)
        twin = {"compiled": {"runtime": "onnxruntime", "rows": 3000}} if compile else {}
        (path / "berth.json").write_text(json.dumps({"name": name, **twin}))

    monkeypatch.setattr(berth, "save", save)
    model = models.Model("logreg", "LogisticRegression", tmp_path / "model.joblib", tmp_path / "mlflow",
                         tmp_path / "mlserver", ["a"])
    models._save_bundles(model, object(), pd.DataFrame({"a": [1.0, 2.0]}))
    assert sorted((c["path"].name, c["compile"]) for c in calls) == [("bundle", False), ("bundle-twin", True)]
    assert model.bundles == {models.PLAIN: tmp_path / "bundle", models.TWIN: tmp_path / "bundle-twin"}
    assert model.bundle_errors == {}
    assert model.twin == 'compiled: {"rows": 3000, "runtime": "onnxruntime"}'


def test_without_compile_the_twin_is_not_available(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    import berth

    calls: list[dict[str, Any]] = []

    def save(model: Any, path: Any, *, sample: Any = None, reference: Any = None, name: str | None = None,
             overwrite: bool = False, **options: Any) -> None:
        calls.append(options)
        path.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(berth, "save", save)
    model = models.Model("logreg", "LogisticRegression", tmp_path / "model.joblib", tmp_path / "mlflow",
                         tmp_path / "mlserver", ["a"])
    models._save_bundles(model, object(), pd.DataFrame({"a": [1.0, 2.0]}))
    assert calls == [{}]  # one plain save, no compile option passed to the flavor
    assert list(model.bundles) == [models.PLAIN]
    assert model.bundle_errors[models.TWIN].startswith("not available")


def test_mlserver_settings_use_the_sklearn_runtime_with_adaptive_batching(tmp_path: Any) -> None:
    model = models.Model("logreg", "LogisticRegression", tmp_path / "model.joblib", tmp_path / "mlflow",
                         tmp_path / "mlserver", ["a"])
    settings = models.mlserver_settings(model)
    assert settings["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert settings["parameters"]["uri"] == str(tmp_path / "model.joblib")
    assert settings["max_batch_size"] > 1 and 0 < settings["max_batch_time"] < 1


def test_berth_workers_reads_the_option_or_takes_berths_default() -> None:
    assert servers.berth_workers(["--workers", "1"]) == 1
    assert servers.berth_workers(["--no-batching", "--workers=3"]) == 3
    assert servers.berth_workers([]) == max(1, min(os.cpu_count() or 1, 4))
    assert servers.berth_workers(["--workers", "zero"]) == servers.berth_workers([])


def test_every_cold_start_server_and_both_berth_variants_are_there() -> None:
    keys = [s.key for s in servers.cold_start_specs(None)]
    assert keys == ["berth --workers 1 (twin)", "berth --workers 2 (twin)", "berth --workers 1 (no twin)",
                    "berth --workers 2 (no twin)", "gunicorn (1)", "gunicorn (2)", "mlflow", "bentoml-batch",
                    "mlserver"]
    workers = {s.key: s.workers for s in servers.cold_start_specs(None)}
    assert workers["gunicorn (1)"] == 1 and workers["gunicorn (2)"] == 2 and workers["berth --workers 2 (twin)"] == 2


def test_a_missing_twin_bundle_skips_only_the_twin_variant(tmp_path: Any) -> None:
    model = models.Model("logreg", "LogisticRegression", tmp_path / "m.joblib", tmp_path, tmp_path, ["a"],
                         bundles={models.PLAIN: tmp_path / "bundle"},
                         bundle_errors={models.TWIN: "not available: no compile"})
    specs = {s.variant: s for s in servers.berth_specs([""], None)}
    assert servers.skip_reason(specs[models.TWIN], model) == "not available: no compile"
    assert servers.skip_reason(specs[models.PLAIN], model) is None
    assert str(tmp_path / "bundle") in specs[models.PLAIN].argv(model, 8000)
    assert servers.skip_reason(servers.berth_specs([""], "berth is broken")[1], model) == "berth is broken"


def test_servers_option_picks_by_key_first_word_or_environment() -> None:
    specs = servers.cold_start_specs(None)
    assert [s.key for s in chosen(specs, {"gunicorn"})] == ["gunicorn (1)", "gunicorn (2)"]
    assert len(chosen(specs, {"berth"})) == 4
    assert [s.key for s in chosen(specs, {"mlserver", "bentoml-batch"})] == ["bentoml-batch", "mlserver"]
    assert chosen(specs, None) == specs


def test_quick_mode_is_short_and_never_waits_for_a_quiet_machine() -> None:
    quick = parse_args(["--quick"])
    assert (quick.duration, quick.cold_starts, quick.quiet_wait, quick.cold_models) == (2, 2, 0.0, ["logreg"])
    full = parse_args([])
    assert (full.duration, full.cold_starts, full.quiet_wait) == (10, 5, 120.0)
    assert full.models == ["logreg", "forest", "gboost"] and full.cold_models == ["logreg", "forest"]
    assert parse_args(["--no-quiet-wait"]).quiet_wait == 0.0
    with pytest.raises(SystemExit):
        parse_args(["--parts", "load,warm"])


# --------------------------------------------------------------------------------------------- targets

def _run(c: int, rps: float, p50: float = 1.0, errors: int = 0) -> dict[str, Any]:
    return {"concurrency": c, "rps": rps, "p50_ms": p50, "p99_ms": p50 * 3, "non_2xx": errors, "socket_errors": 0}


def _load(model: str, server: str, rps: dict[int, float], variant: str | None = None,
          p50: float = 1.0) -> dict[str, Any]:
    return {"model": model, "server": server, "variant": variant,
            "runs": [_run(c, r, p50) for c, r in rps.items()]}


def _cold(model: str, server: str, ready: float, variant: str | None = None) -> dict[str, Any]:
    summary = coldstart.median_summary([ready])
    return {"model": model, "server": server, "variant": variant, "workers": 1, "ready_s": summary,
            "first_prediction_s": summary}


def _data() -> dict[str, Any]:
    twin, plain = targets.TWIN, targets.PLAIN
    records = [
        _load("forest", "gunicorn", {1: 100, 64: 200}),
        _load("forest", "bentoml-batch", {1: 50, 64: 400}),
        _load("forest", "mlserver", {1: 90, 64: 300}),
        _load("forest", "berth (twin)", {1: 900, 64: 6000}, twin, p50=1.2),
        _load("forest", "berth (no twin)", {1: 80, 64: 1600}, plain, p50=13.0),
        _load("logreg", "gunicorn", {1: 1000, 64: 2000}),
        _load("logreg", "mlserver", {1: 200, 64: 1500}),
        _load("logreg", "berth (twin)", {1: 3000, 64: 12000}, twin),
        {"model": "logreg", "server": "berth (no twin)", "variant": plain, "runs": [],
         "error": "RuntimeError: the server exited during the run"},
    ]
    cold = [
        _cold("logreg", "berth --workers 1 (twin)", 0.9, twin),
        _cold("logreg", "berth --workers 2 (twin)", 2.5, twin),
        _cold("logreg", "berth --workers 1 (no twin)", 3.0, plain),
        _cold("logreg", "gunicorn (1)", 1.2),
    ]
    return {"settings": {"concurrency": [1, 64]}, "records": records, "cold": cold}


def _cells(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {text: (check(data, targets.TWIN), check(data, targets.PLAIN)) for text, check in targets.targets()}


def test_targets_check_ratios_latency_and_mlserver() -> None:
    cells = _cells(_data())
    assert cells["RandomForest, c=64: >= 25x gunicorn"] == ("30.0x ✓", "8.0x ✗")
    assert cells["RandomForest, c=64: >= 10x bentoml-batch"] == ("15.0x ✓", "4.0x ✗")
    assert cells["RandomForest, c=1: p50 <= 1.5 ms"] == ("1.20 ms ✓", "13.00 ms ✗")
    assert cells["LogisticRegression, c=64: >= 5x gunicorn"][0] == "6.0x ✓"
    assert cells["LogisticRegression, c=64: >= 5x gunicorn"][1].startswith("– (RuntimeError: the server exited")
    twin, plain = cells["ahead of MLServer on every model at every concurrency"]
    assert twin == "lowest 8.0x (logreg c=64) ✓"
    # behind at forest c=1 (80 < 90), and the failed logreg run is not counted as ahead
    assert plain.startswith("lowest 0.9x (forest c=1) ✗; not measured: logreg c=1, logreg c=64")


def test_targets_check_cold_start_against_the_limit_and_gunicorn() -> None:
    cells = _cells(_data())
    w1 = "cold start, logreg, --workers 1: ready <= 1.5 s and no later than gunicorn (1)'s first answer"
    assert cells[w1] == ("0.90 s (gunicorn (1): 1.20 s) ✓", "3.00 s (gunicorn (1): 1.20 s) ✗")
    assert cells["cold start, logreg, --workers 2: ready <= 2.0 s"] == ("2.50 s ✗", "– (not measured)")
    halved = cells["cold start, logreg, --workers 1, without a twin: halved (<= 4.25 s, from 8.5 s)"]
    assert halved == ("(a target of berth (no twin) only)", "3.00 s ✓")
    assert cells["cold start, forest, --workers 2: ready <= 2.0 s"] == ("– (not measured)", "– (not measured)")


def test_zero_errors_counts_failed_runs_and_error_responses() -> None:
    data = _data()
    cells = _cells(data)
    assert cells["zero errors in every run"][0] == "0 errors ✓"
    assert cells["zero errors in every run"][1] == "0 errors, failed: logreg / berth (no twin) ✗"
    data["records"][3]["runs"][0]["non_2xx"] = 4
    assert _cells(data)["zero errors in every run"][0] == "4 errors ✗"


def test_a_variant_that_was_not_served_says_why() -> None:
    data = _data()
    data["records"] = [r for r in data["records"] if r["variant"] != targets.TWIN]
    data["cold"] = [r for r in data["cold"] if r["variant"] != targets.TWIN]
    data["records"].append({"model": "logreg", "server": "berth (twin)", "variant": targets.TWIN, "runs": [],
                            "skipped": "not available: no compile parameter"})
    cells = _cells(data)
    assert cells["ahead of MLServer on every model at every concurrency"][0] == (
        "– (not available: no compile parameter)")
    assert cells["zero errors in every run"][0] == "– (not available: no compile parameter)"


def test_forest_ratio_targets_are_issue_10s() -> None:
    assert targets.ratio_target("forest", "gunicorn") == 25.0
    assert targets.ratio_target("logreg", "gunicorn") == 5.0
    assert targets.ratio_target("gboost", "mlflow") == 10.0
    assert targets.ratio_target("logreg", "flask-dev") is None


def test_render_writes_every_section_from_one_runs_data() -> None:
    data = _data()
    data["settings"].update({"command": "python -m bench.serving.run --quick", "quick": True, "parts": ["load", "cold"],
                             "duration": 2, "warmup": 1, "cold_starts": 1, "cold_poll_s": 0.02, "quiet_wait_s": 0.0,
                             "json_name": "x.json"})
    data.update({"finished": "now", "elapsed_min": 1.0, "loadavg_start": "1", "loadavg_end": "2",
                 "machine": {"cores": 2, "cpu": "cpu", "kernel": "k", "python": "3.11"}, "versions": {"wrk": "wrk"}})
    servers_ = {(r["server"], r.get("variant")) for r in data["records"]}
    data["servers"] = [{"key": k, "label": k, "env": "berth" if v else "flask", "workers": 1, "variant": v}
                       for k, v in sorted(servers_, key=str)]
    data["cold_servers"] = []
    inprocess = {"predict_1_numpy_ms": 0.2, "predict_1_frame_ms": 1.0, "predict_64_per_row_ms": 0.01,
                 "berth_load_predict_1_ms": 0.5, "berth_twin_load_predict_1_ms": None, "other_cpu_cores": 0.0}
    data["models"] = [{"key": k, "title": k.title(), "inprocess": inprocess, "twin": None, "bundle_errors": {}}
                      for k in ("logreg", "forest")]
    data["records"][3]["workers"] = 2
    data["records"][3]["memory_loaded"] = memory.summarize([memory.ProcessMemory(1, 0, "b", 2048 * 1024, None)], 2)
    text = report.render(data)
    for heading in ("## Logreg", "## Forest", "## Cold start", "## Targets"):
        assert heading in text
    assert "| berth (twin) | 2 | 1 | – | 2,048 | – | 1,024 | – | 2,048 |" in text  # the memory row
    assert "| 0.500 ms | – |" in text  # no twin timing: a dash, not "– ms"
