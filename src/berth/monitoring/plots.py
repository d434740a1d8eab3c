"""Plots of a report as inline SVG strings, drawn with matplotlib's object API (no pyplot state, no files).

Text is drawn as paths, so the SVG needs no font; ids are salted per figure so that several plots in one page
never share an id.
"""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import numpy as np

REFERENCE_COLOR = "#7f8c8d"
CURRENT_COLOR = "#3b6ea5"
DRIFT_COLOR = "#c0392b"
OK_COLOR = "#1e8449"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=72, layout="constrained")


def _svg(figure: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": uuid.uuid4().hex, "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def distribution(name: str, plot: dict[str, Any]) -> str:
    """Reference vs current shares over the reference's histogram bins or categories."""
    figure = _figure(4.2, 2.6)
    axes = figure.add_subplot()
    reference, current = np.asarray(plot["reference"]), np.asarray(plot["current"])
    if "edges" in plot:
        edges = np.asarray(plot["edges"])
        widths = np.diff(edges)
        axes.bar(edges[:-1], reference, width=widths, align="edge", color=REFERENCE_COLOR, alpha=0.55,
                 label="training")
        axes.bar(edges[:-1], current, width=widths, align="edge", color=CURRENT_COLOR, alpha=0.55, label="current")
    else:
        positions = np.arange(len(reference))
        axes.bar(positions - 0.2, reference, width=0.4, color=REFERENCE_COLOR, label="training")
        axes.bar(positions + 0.2, current, width=0.4, color=CURRENT_COLOR, label="current")
        axes.set_xticks(positions, [str(c)[:12] for c in plot["categories"]], rotation=45, ha="right",
                        fontsize=7)
    axes.set_title(name, fontsize=10)
    axes.set_ylabel("share", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7, frameon=False)
    return _svg(figure)


def drift_scores(features: list[dict[str, Any]]) -> str:
    """One bar per feature: its score relative to its threshold (1 = at the threshold; above = drift)."""
    judged = [f for f in features if f["method"]]
    figure = _figure(6.5, 0.5 + 0.35 * max(len(judged), 1))
    axes = figure.add_subplot()
    if not judged:
        axes.text(0.5, 0.5, "not enough data", ha="center", va="center")
        axes.set_axis_off()
        return _svg(figure)
    values = [severity(f) for f in judged]
    colors = [DRIFT_COLOR if f["drifted"] else OK_COLOR for f in judged]
    positions = np.arange(len(judged))
    axes.barh(positions, values, color=colors)
    axes.set_yticks(positions, [f"{f['feature']} ({f['method']})" for f in judged], fontsize=8)
    axes.axvline(1.0, color="#333", linestyle="--", linewidth=1)
    axes.invert_yaxis()
    axes.set_xlabel("drift score / threshold (above 1: drift)", fontsize=8)
    axes.set_title("Drift per feature", fontsize=10)
    axes.tick_params(labelsize=7)
    return _svg(figure)


def severity(feature: dict[str, Any]) -> float:
    """A feature's score on one scale: 1 at its threshold, above 1 drifted (p-values are inverted)."""
    score, threshold = feature["score"], feature["threshold"]
    if feature["method"] in ("ks", "chisquare"):
        return float(np.log10(max(score, 1e-300)) / np.log10(threshold)) if threshold < 1 else 0.0
    return float(score / threshold) if threshold else 0.0


def performance(perf: dict[str, Any]) -> str:
    figure = _figure(6.5, 2.4)
    axes = figure.add_subplot()
    buckets = perf["buckets"]
    keys = ("accuracy", "f1") if perf["task"] == "classification" else ("mae", "rmse")
    labels = [b["start"][5:16].replace("T", " ") for b in buckets]
    if len(buckets) == 1:  # one bucket: bars with their values, not lone dots
        values = [buckets[0].get(k) if buckets[0].get(k) is not None else np.nan for k in keys]
        bars = axes.bar(range(len(keys)), values, color=[CURRENT_COLOR, REFERENCE_COLOR][:len(keys)], width=0.5)
        axes.bar_label(bars, fmt="%.3g", fontsize=7)
        axes.set_xticks(range(len(keys)), list(keys), fontsize=8)
        axes.set_title(f"Performance, {labels[0]} ({perf.get('bucket', 'bucket')} bucket)", fontsize=10)
        axes.tick_params(labelsize=7)
        return _svg(figure)
    for key in keys:
        axes.plot(range(len(buckets)), [b.get(key) if b.get(key) is not None else np.nan for b in buckets],
                  marker="o", label=key)
    axes.set_xticks(range(len(buckets)), labels, rotation=45, ha="right", fontsize=7)
    axes.set_title(f"Performance per {perf.get('bucket', 'bucket')}", fontsize=10)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7, frameon=False)
    return _svg(figure)


def traffic(data: dict[str, Any]) -> str:
    figure = _figure(6.5, 2.4)
    axes = figure.add_subplot()
    buckets = data["buckets"]
    positions = range(len(buckets))
    axes.bar(positions, [b["rows"] for b in buckets], color=CURRENT_COLOR, alpha=0.6)
    axes.set_ylabel("predictions", fontsize=8)
    latency = axes.twinx()
    style = {"marker": "o", "linestyle": "none"} if len(buckets) == 1 else {}  # one bucket: points, with values
    latency.plot(positions, [b["p50"] for b in buckets], color="#333", label="p50 ms", **style)
    latency.plot(positions, [b["p99"] for b in buckets], color=DRIFT_COLOR, label="p99 ms", **style)
    if len(buckets) == 1:
        axes.set_xlim(-1, 1)
        for key, color in (("p50", "#333"), ("p99", DRIFT_COLOR)):
            latency.annotate(f"{key} {buckets[0][key]:.3g} ms", (0, buckets[0][key]), xytext=(8, 0),
                             textcoords="offset points", fontsize=7, color=color, va="center")
    latency.set_ylabel("latency ms", fontsize=8)
    latency.legend(fontsize=7, frameon=False, loc="upper left")
    labels = [b["start"][5:16].replace("T", " ") for b in buckets]
    step = max(1, len(labels) // 12)
    axes.set_xticks(list(positions)[::step], labels[::step], rotation=45, ha="right", fontsize=7)
    axes.set_title(f"Traffic and latency per {data['bucket']}", fontsize=10)
    axes.tick_params(labelsize=7)
    latency.tick_params(labelsize=7)
    return _svg(figure)


def drift_timeline(timeline: dict[str, Any]) -> str:
    """A heatmap: one row per feature (and the prediction), one column per bucket, coloured by the drift score
    relative to its threshold (1 = at the threshold); drifted cells marked, dataset-drift buckets underlined."""
    from matplotlib.colors import LinearSegmentedColormap

    names = list(timeline["features"])
    starts = timeline["starts"]
    values = np.full((len(names), len(starts)), np.nan)
    for row, name in enumerate(names):
        for column, cell in enumerate(timeline["features"][name]):
            if cell["severity"] is not None:
                values[row, column] = min(cell["severity"], 3.0)
    figure = _figure(min(2.5 + 0.32 * len(starts), 11), 0.9 + 0.32 * len(names))
    axes = figure.add_subplot()
    colors = LinearSegmentedColormap.from_list("drift", [OK_COLOR, "#f4f6f8", "#f5b041", DRIFT_COLOR])
    image = axes.imshow(values, aspect="auto", cmap=colors, vmin=0, vmax=3, interpolation="nearest")
    for row, name in enumerate(names):
        for column, cell in enumerate(timeline["features"][name]):
            if cell["drifted"]:
                axes.text(column, row, "x", ha="center", va="center", fontsize=7, color="white")
    for column, drifted in enumerate(timeline["dataset_drift"]):
        if drifted:
            axes.add_patch(_rectangle(column - 0.5, len(names) - 0.5))
    labels = [s[5:16].replace("T", " ") if timeline["bucket"] != "1D" else s[:10] for s in starts]
    step = max(1, len(labels) // 16)
    axes.set_xticks(list(range(len(labels)))[::step], labels[::step], rotation=45, ha="right", fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.set_ylim(len(names) - 0.5 + 0.35, -0.5)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02)
    colorbar.set_label("score / threshold", fontsize=7)
    colorbar.ax.tick_params(labelsize=6)
    title = f"Drift per {timeline['bucket']} bucket (x: drifted; red line: dataset drift)"
    axes.set_title(title, fontsize=9)
    return _svg(figure)


def _rectangle(x: float, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1.0, 0.3, color=DRIFT_COLOR, clip_on=False)
