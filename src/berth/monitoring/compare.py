"""Champion / challenger: a baseline version and a candidate compared on the same window of live traffic.

Rows of the prediction log are the candidate's when it answered (a canary) or was shadowed (``shadow`` rows,
under the request id of the baseline's answer). Labels (``berth monitor feedback``, ``POST /feedback``) join
both by (request id, row), so a shadowed request gives a *paired* comparison on the very same inputs.

For each version: requests, rows, latency p50/p99 (of answers; of shadow calls when it only shadowed), error
rate (requests it failed with a 5xx, and failed shadow calls), input and prediction drift against the
version's own reference, and on labelled rows accuracy / F1 / ROC AUC (classifiers) or MAE / RMSE (regressors)
with 95 % confidence intervals: Wilson for accuracy, a seeded percentile bootstrap for the others.

Between them: agreement on shadowed requests (same label, or the mean absolute difference for regressors) and a
significance test of the difference of the headline metric (accuracy / MAE): McNemar's exact test on paired
labelled rows when there are any, else a two-proportion z-test (accuracy) or a Mann-Whitney U test on absolute
errors (MAE).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from berth.errors import StorageError
from berth.monitoring.drift import DriftConfig, dataset_drift, prediction_drift
from berth.monitoring.scoring import normalize_label
from berth.monitoring.store import FEATURE_PREFIX, Store, utc

Z95 = 1.959963984540054
BOOTSTRAP = 400
KEY = ["request_id", "row"]


def wilson(successes: int, n: int) -> tuple[float | None, float | None]:
    """The 95 % Wilson score interval of a proportion."""
    if n == 0:
        return None, None
    p = successes / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(values: Any, statistic: Any, n: int, seed: int = 0) -> tuple[float | None, float | None]:
    """A 95 % percentile bootstrap interval of ``statistic(indices)`` over ``n`` rows (seeded: repeatable)."""
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(BOOTSTRAP):
        value = statistic(rng.integers(0, n, n))
        if value is not None and math.isfinite(value):
            estimates.append(value)
    if len(estimates) < BOOTSTRAP // 2:
        return None, None
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


def metric(value: float | None, interval: tuple[float | None, float | None] = (None, None)) -> dict[str, Any]:
    return {"value": value, "low": interval[0], "high": interval[1]}


def classification_scores(truth: np.ndarray, guess: np.ndarray, probabilities: list[Any] | None,
                          classes: list[str] | None) -> dict[str, Any]:
    from sklearn.metrics import f1_score, roc_auc_score

    n = len(truth)
    correct = truth == guess
    scores: dict[str, Any] = {"accuracy": metric(float(correct.mean()), wilson(int(correct.sum()), n))}

    def f1(index: np.ndarray) -> float:
        return float(f1_score(truth[index], guess[index], average="macro", zero_division=0))

    scores["f1"] = metric(f1(np.arange(n)), bootstrap(None, f1, n, seed=1))
    scores["roc_auc"] = metric(None)
    if probabilities is not None and classes and all(p is not None for p in probabilities):
        matrix = np.array(probabilities, dtype="float64")
        if matrix.ndim == 2 and matrix.shape[1] == len(classes) and len(set(truth)) >= 2 \
                and set(truth) <= set(classes):

            def auc(index: np.ndarray) -> float | None:
                sub_truth = truth[index]
                if len(set(sub_truth)) < len(set(truth)):
                    return None
                if len(classes) == 2:
                    return float(roc_auc_score(sub_truth == classes[1], matrix[index, 1]))
                return float(roc_auc_score(sub_truth, matrix[index], multi_class="ovr", labels=classes))

            with contextlib.suppress(ValueError):  # a class never labelled: no AUC
                scores["roc_auc"] = metric(auc(np.arange(n)), bootstrap(None, auc, n, seed=2))
    return scores


def regression_scores(truth: np.ndarray, guess: np.ndarray) -> dict[str, Any]:
    error = guess - truth
    n = len(error)

    def mae(index: np.ndarray) -> float:
        return float(np.mean(np.abs(error[index])))

    def rmse(index: np.ndarray) -> float:
        return float(np.sqrt(np.mean(error[index] ** 2)))

    everything = np.arange(n)
    return {"mae": metric(mae(everything), bootstrap(None, mae, n, seed=3)),
            "rmse": metric(rmse(everything), bootstrap(None, rmse, n, seed=4))}


def _labels(store: Store, model: str) -> pd.DataFrame:
    table = store.feedback(model)
    if table.num_rows == 0:
        return pd.DataFrame(columns=[*KEY, "label"])
    return table.select([*KEY, "label"]).to_pandas()


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")


def version_section(rows: pd.DataFrame, role: str, info: dict[str, Any], labels: pd.DataFrame,
                    classification: bool, config: DriftConfig) -> dict[str, Any]:
    served = rows[~rows["shadow"]]  # answered or failed (a 5xx) requests of this version
    shadowed = rows[rows["shadow"]]
    served_ok = served[served["error"].isna()]
    timing = served_ok if len(served_ok) else shadowed[shadowed["error"].isna()]
    per_request = timing.drop_duplicates("request_id")["latency_ms"].to_numpy(dtype="float64")
    requests, shadow_requests = int(served["request_id"].nunique()), int(shadowed["request_id"].nunique())
    errors = len(rows[rows["error"].notna()].drop_duplicates(["request_id", "shadow"]))
    answered = rows[rows["prediction"].notna()]
    section: dict[str, Any] = {
        "role": role, "requests": requests, "rows": len(served_ok),
        "shadow_requests": shadow_requests,
        "latency_ms": {"p50": float(np.percentile(per_request, 50)) if len(per_request) else None,
                       "p99": float(np.percentile(per_request, 99)) if len(per_request) else None,
                       "of": "answers" if len(served) else "shadow calls"},
        "errors": errors,
        "error_rate": errors / (requests + shadow_requests) if requests + shadow_requests else None,
    }
    reference = info.get("reference") or {}
    names = [f for f in reference.get("features", {}) if FEATURE_PREFIX + f in answered.columns]
    if len(answered) and names:
        frame = pd.DataFrame({f: answered[FEATURE_PREFIX + f].to_numpy() for f in names})
        drift = dataset_drift(frame, reference, config).to_dict()
        section["drift"] = {"share": drift["share"], "drifted": drift["drifted"],
                            "features": {f["feature"]: round(f["score"], 6) for f in drift["features"]}}
        section["prediction_drift"] = prediction_drift(answered["prediction"], reference.get("predictions"),
                                                       classification, config).to_dict()
    else:
        section["drift"] = section["prediction_drift"] = None
    joined = answered.merge(labels, on=KEY, how="inner")
    section["labelled"] = len(joined)
    section["metrics"] = label_scores(joined, classification, info)
    return section


def label_scores(joined: pd.DataFrame, classification: bool, info: dict[str, Any]) -> dict[str, Any]:
    if joined.empty:
        empty = ("accuracy", "f1", "roc_auc") if classification else ("mae", "rmse")
        return {name: metric(None) for name in empty}
    if classification:
        classes = (info.get("signature") or {}).get("outputs", {}).get("classes")
        names = [normalize_label(c) for c in classes] if classes else None
        probabilities = joined["probabilities"].tolist() if "probabilities" in joined else None
        return classification_scores(joined["label"].map(normalize_label).astype(str).to_numpy(),
                                     joined["prediction"].map(normalize_label).astype(str).to_numpy(),
                                     probabilities, names)
    truth, guess = _numbers(joined["label"]), _numbers(joined["prediction"])
    keep = np.isfinite(truth) & np.isfinite(guess)
    return regression_scores(truth[keep], guess[keep])


def agreement(base: pd.DataFrame, cand: pd.DataFrame, classification: bool) -> dict[str, Any]:
    """How often the candidate's shadow answer matched the baseline's answer to the same request row."""
    pairs = base[~base["shadow"] & base["prediction"].notna()].merge(cand[cand["shadow"]
                                                                          & cand["prediction"].notna()], on=KEY,
                                        suffixes=("_base", "_cand"))
    result: dict[str, Any] = {"pairs": len(pairs), "rate": None, "mean_abs_diff": None}
    if pairs.empty:
        return result
    if classification:
        same = (pairs["prediction_base"].map(normalize_label) == pairs["prediction_cand"].map(normalize_label))
        result["rate"] = float(same.mean())
        result["interval"] = wilson(int(same.sum()), len(same))
    else:
        diff = np.abs(_numbers(pairs["prediction_base"]) - _numbers(pairs["prediction_cand"]))
        result["mean_abs_diff"] = float(np.nanmean(diff))
    return result


def significance(base: pd.DataFrame, cand: pd.DataFrame, labels: pd.DataFrame,
                 classification: bool) -> dict[str, Any]:
    """The test of the headline metric's difference (candidate minus baseline)."""
    from scipy import stats

    b = base[base["prediction"].notna()].merge(labels, on=KEY)
    c = cand[cand["prediction"].notna()].merge(labels, on=KEY)
    paired = b.merge(c, on=KEY, suffixes=("_base", "_cand"))
    if classification:
        def right(frame: pd.DataFrame, column: str = "prediction", label: str = "label") -> np.ndarray:
            return (frame[column].map(normalize_label) == frame[label].map(normalize_label)).to_numpy()

        if len(paired):
            base_ok, cand_ok = right(paired, "prediction_base", "label_base"), right(paired, "prediction_cand",
                                                                                     "label_base")
            only_base, only_cand = int((base_ok & ~cand_ok).sum()), int((~base_ok & cand_ok).sum())
            discordant = only_base + only_cand
            p = float(stats.binomtest(only_cand, discordant, 0.5).pvalue) if discordant else 1.0
            return {"metric": "accuracy", "test": "mcnemar-exact", "pairs": len(paired),
                    "discordant": discordant, "difference": float(cand_ok.mean() - base_ok.mean()), "p_value": p}
        if len(b) and len(c):
            x1, x2 = right(b), right(c)
            pooled = (x1.sum() + x2.sum()) / (len(x1) + len(x2))
            se = math.sqrt(pooled * (1 - pooled) * (1 / len(x1) + 1 / len(x2)))
            diff = float(x2.mean() - x1.mean())
            p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else 1.0
            return {"metric": "accuracy", "test": "two-proportion-z", "pairs": 0, "difference": diff, "p_value": p}
        return {"metric": "accuracy", "test": None, "pairs": 0, "difference": None, "p_value": None}
    if len(paired):
        eb = np.abs(_numbers(paired["prediction_base"]) - _numbers(paired["label_base"]))
        ec = np.abs(_numbers(paired["prediction_cand"]) - _numbers(paired["label_base"]))
        keep = np.isfinite(eb) & np.isfinite(ec)
        eb, ec = eb[keep], ec[keep]
        p = float(stats.wilcoxon(ec, eb).pvalue) if len(eb) and np.any(ec != eb) else 1.0
        return {"metric": "mae", "test": "wilcoxon-signed-rank", "pairs": len(eb),
                "difference": float(ec.mean() - eb.mean()) if len(eb) else None, "p_value": p}
    if len(b) and len(c):
        eb = np.abs(_numbers(b["prediction"]) - _numbers(b["label"]))
        ec = np.abs(_numbers(c["prediction"]) - _numbers(c["label"]))
        eb, ec = eb[np.isfinite(eb)], ec[np.isfinite(ec)]
        p = float(stats.mannwhitneyu(ec, eb).pvalue) if len(eb) and len(ec) else 1.0
        return {"metric": "mae", "test": "mann-whitney-u", "pairs": 0, "difference": float(ec.mean() - eb.mean()),
                "p_value": p}
    return {"metric": "mae", "test": None, "pairs": 0, "difference": None, "p_value": None}


def compare(model: str, baseline: str, candidate: str, *, since: dt.datetime | None = None,
            until: dt.datetime | None = None, store: Store | None = None,
            config: DriftConfig | None = None) -> dict[str, Any]:
    """The comparison of ``candidate`` with ``baseline`` (logged version strings) on the window's traffic."""
    store = store or Store()
    config = config or DriftConfig()
    infos = store.versions(model)
    missing = [v for v in (baseline, candidate) if v not in infos]
    if missing and not infos:
        raise StorageError(f"model {model!r} has no prediction log under {store.root}")
    info = {v: infos.get(v) or infos.get(baseline) or next(iter(infos.values())) for v in (baseline, candidate)}
    outputs = (info[baseline].get("signature") or {}).get("outputs", {})
    classification = outputs.get("kind") == "classification"
    table = store.read(model, since, until)
    if table.num_rows and "version" in table.column_names:
        table = table.filter(pc.is_in(pc.cast(table["version"], pa.string()),
                                      value_set=pa.array([baseline, candidate], pa.string())))
    frame = table.to_pandas() if table.num_rows else pd.DataFrame(columns=["version", *KEY, "latency_ms",
                                                                           "prediction"])
    for column, default in (("shadow", False), ("error", None), ("probabilities", None)):
        if column not in frame:
            frame[column] = default
    frame["shadow"] = frame["shadow"].fillna(False).astype(bool)
    labels = _labels(store, model)
    base = frame[frame["version"] == baseline]
    cand = frame[frame["version"] == candidate]
    return {
        "model": model, "task": "classification" if classification else outputs.get("kind", "regression"),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "window": {"since": utc(since).isoformat() if since else None,
                   "until": utc(until).isoformat() if until else None},
        "baseline": baseline, "candidate": candidate,
        "versions": {baseline: version_section(base, "baseline", info[baseline], labels, classification, config),
                     candidate: version_section(cand, "candidate", info[candidate], labels, classification,
                                                config)},
        "agreement": agreement(base, cand, classification),
        "test": significance(base, cand, labels, classification),
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The comparison as a few lines of text."""
    b, c = result["baseline"], result["candidate"]
    vb, vc = result["versions"][b], result["versions"][c]
    lines = [f"{result['model']}: baseline version {b} vs candidate version {c} ({result['task']})"]

    def fmt(value: Any, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    def ci(m: dict[str, Any]) -> str:
        if m["value"] is None:
            return "-"
        return fmt(m["value"]) + (f" [{fmt(m['low'])}, {fmt(m['high'])}]" if m["low"] is not None else "")

    rows = [("requests answered", vb["requests"], vc["requests"]),
            ("requests shadowed", vb["shadow_requests"], vc["shadow_requests"]),
            ("labelled rows", vb["labelled"], vc["labelled"])]
    rows += [(name, ci(vb["metrics"][name]), ci(vc["metrics"][name])) for name in vb["metrics"]]
    rows += [("p50 ms", fmt(vb["latency_ms"]["p50"]), fmt(vc["latency_ms"]["p50"])),
             ("p99 ms", fmt(vb["latency_ms"]["p99"]), fmt(vc["latency_ms"]["p99"])),
             ("error rate", fmt(vb["error_rate"]), fmt(vc["error_rate"])),
             ("drifted feature share", fmt((vb["drift"] or {}).get("share")), fmt((vc["drift"] or {}).get("share")))]
    width = max(len(r[0]) for r in rows)
    lines.append(f"  {'':{width}}  {'baseline ' + b:>28}  {'candidate ' + c:>28}")
    lines += [f"  {name:{width}}  {x!s:>28}  {y!s:>28}" for name, x, y in rows]
    agree = result["agreement"]
    if agree["pairs"]:
        what = (f"same answer on {agree['rate']:.1%}" if agree["rate"] is not None
                else f"mean absolute difference {agree['mean_abs_diff']:.4g}")
        lines.append(f"  agreement on {agree['pairs']:,} shadowed rows: {what}")
    test = result["test"]
    if test["test"]:
        lines.append(f"  {test['metric']} difference {fmt(test['difference'])} ({test['test']}, "
                     f"p = {fmt(test['p_value'], 3)})")
    return lines


def detect_pair(store: Store, model: str, since: dt.datetime | None,
                until: dt.datetime | None) -> tuple[str, str] | None:
    """(baseline, candidate) when the window holds a candidate's rows beside the baseline's: the most frequent
    shadowed version against the most frequent answering version, else the two most frequent answering versions
    when both answered at once (a canary). None otherwise. Counted in one streaming aggregation (rows by version
    and shadow flag, with their first and last time): a 10,000,000-row window never reaches pandas."""
    groups = store.retrying(lambda: version_counts(store, model, since, until))
    if not groups:
        return None
    served = sorted(((n, v, lo, hi) for v, shadow, n, lo, hi in groups if not shadow), key=lambda g: -g[0])
    shadowed = sorted(((n, v) for v, shadow, n, _, _ in groups if shadow), key=lambda g: -g[0])
    if shadowed and served:
        candidate = str(shadowed[0][1])
        others = [str(v) for _, v, _, _ in served if str(v) != candidate]
        return (others[0], candidate) if others else None
    if len(served) >= 2:
        (_, first, first_lo, first_hi), (_, second, second_lo, second_hi) = served[:2]
        overlap = first_lo < second_hi and second_lo < first_hi
        return (str(first), str(second)) if overlap else None
    return None


def version_counts(store: Store, model: str, since: dt.datetime | None,
                   until: dt.datetime | None) -> list[tuple[Any, bool, int, Any, Any]]:
    """(version, shadowed, rows, first time, last time) of the window's rows, in order of first appearance."""
    import pyarrow.acero as acero
    import pyarrow.compute as pc

    dataset, condition = store.window(model, since, until)
    if dataset is None or "version" not in dataset.schema.names:
        return []
    shadow = pc.coalesce(pc.field("shadow"), pc.scalar(False)) if "shadow" in dataset.schema.names \
        else pc.scalar(False)
    read = [c for c in ("time", "version", "shadow") if c in dataset.schema.names]
    steps = [acero.Declaration("scan", acero.ScanNodeOptions(dataset, columns=read, filter=condition))]
    if condition is not None:
        steps.append(acero.Declaration("filter", acero.FilterNodeOptions(condition)))
    steps += [acero.Declaration("project", acero.ProjectNodeOptions(
                  [pc.field("version"), shadow, pc.field("time")], ["version", "shadow", "time"])),
              acero.Declaration("aggregate", acero.AggregateNodeOptions(
                  [([], "hash_count_all", None, "rows"), ("time", "hash_min", None, "first"),
                   ("time", "hash_max", None, "last")], keys=["version", "shadow"]))]
    table = acero.Declaration.from_sequence(steps).to_table(use_threads=True).sort_by(
        [("first", "ascending"), ("version", "ascending")])
    return [(r["version"], bool(r["shadow"]), int(r["rows"]), r["first"], r["last"]) for r in table.to_pylist()
            if r["version"] is not None]


def render_section(result: dict[str, Any]) -> str:
    """The comparison as an HTML section (for the report and the dashboard)."""
    import html

    e = html.escape
    b, c = result["baseline"], result["candidate"]
    vb, vc = result["versions"][b], result["versions"][c]

    def cell(m: Any) -> str:
        if isinstance(m, dict):
            if m.get("value") is None:
                return "-"
            interval = (f" <span class='muted'>[{m['low']:.4g}, {m['high']:.4g}]</span>"
                        if m.get("low") is not None else "")
            return f"{m['value']:.4g}{interval}"
        return "-" if m is None else f"{m:.4g}" if isinstance(m, float) else e(str(m))

    rows = [("requests answered", vb["requests"], vc["requests"]),
            ("requests shadowed", vb["shadow_requests"], vc["shadow_requests"]),
            ("labelled rows", vb["labelled"], vc["labelled"]),
            *[(name, vb["metrics"][name], vc["metrics"][name]) for name in vb["metrics"]],
            ("latency p50 ms", vb["latency_ms"]["p50"], vc["latency_ms"]["p50"]),
            ("latency p99 ms", vb["latency_ms"]["p99"], vc["latency_ms"]["p99"]),
            ("error rate", vb["error_rate"], vc["error_rate"]),
            ("drifted feature share", (vb["drift"] or {}).get("share"), (vc["drift"] or {}).get("share"))]
    parts = [f"<section id='comparison'><h2>Champion / challenger: version {e(b)} vs {e(c)}</h2><table>"
             f"<tr><th></th><th>baseline {e(b)}</th><th>candidate {e(c)}</th></tr>"]
    parts += [f"<tr><td>{e(name)}</td><td>{cell(x)}</td><td>{cell(y)}</td></tr>" for name, x, y in rows]
    parts.append("</table>")
    parts += [f"<p>{e(line.strip())}</p>" for line in summary_lines(result)[-2:] if "agreement" in line
              or "difference" in line]
    parts.append("</section>")
    return "".join(parts)
