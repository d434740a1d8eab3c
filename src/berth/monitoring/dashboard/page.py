"""The dashboard page: HTML, CSS and script in one string; it loads nothing but its own JSON API."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>berth monitoring</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafbfc}
header{background:#23395b;color:#fff;padding:.7rem 1.2rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header h1{font-size:1.15rem;margin:0}header select,header button{font-size:.9rem}
main{padding:1rem 1.2rem;max-width:1200px}.cards{display:flex;gap:.8rem;flex-wrap:wrap;margin-bottom:1rem}
.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.25rem}.muted{color:#666;font-size:.85rem}
.summary{background:#fff;border-left:4px solid #3b6ea5;padding:.4rem 1rem;margin-bottom:1rem}
.summary.bad{border-color:#c0392b}table{border-collapse:collapse;background:#fff;font-size:.9rem}
td,th{padding:.25rem .6rem;border-bottom:1px solid #e3e7ec;text-align:left}.drift{color:#c0392b;font-weight:600}
.ok{color:#1e8449}.plots{display:flex;flex-wrap:wrap;gap:.5rem}svg{max-width:100%;height:auto}
section{margin-bottom:1.2rem}
</style></head>
<body>
<header><h1>berth monitoring</h1>
<label>model <select id="model"></select></label>
<label>window <select id="window"><option>15m</option><option selected>1h</option><option>24h</option>
<option>7d</option><option>30d</option></select></label>
<span id="updated" class="muted" style="color:#cfd8e3"></span></header>
<main>
<div id="models" class="cards"></div>
<div id="summary" class="summary"><p class="muted">loading...</p></div>
<section><h2>Drift per feature</h2><div id="drift-table"></div><div id="drift-plot"></div></section>
<section><h2>Drift over time</h2><p id="drift-began" class="muted"></p><div id="drift-timeline"></div></section>
<section><h2>Reference vs current</h2><div id="feature-plots" class="plots"></div></section>
<section><h2>Traffic and latency</h2><div id="traffic"></div></section>
<section><h2>Performance</h2><div id="performance"></div></section>
<section><h2>Champion / challenger</h2><div id="comparison"></div></section>
<section><h2>Data quality</h2><div id="quality"></div></section>
</main>
<script>
"use strict";
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
  '"': "&quot;", "'": "&#39;"}[c]));
const num = (v) => v === null || v === undefined ? "-" : (typeof v === "number" ? Number(v.toPrecision(4)) : esc(v));
const pct = (v) => v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%";
const base = location.pathname.replace(/\\/dashboard\\/?$/, "");

async function getJSON(path) {
  const response = await fetch(base + path, {headers: {accept: "application/json"}});
  const data = await response.json();
  if (!response.ok) { throw new Error((data.error && data.error.message) || response.statusText); }
  return data;
}

function renderModels(overview) {
  const select = $("model");
  const current = select.value;
  const names = overview.models.map((m) => m.name);
  if (select.options.length !== names.length || names.some((n, i) => select.options[i].value !== n)) {
    select.innerHTML = names.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join("");
    if (names.includes(current)) { select.value = current; }
  }
  $("models").innerHTML = overview.models.map((m) => {
    const live = m.live;
    const state = live ? (live.ready ? "<span class='ok'>serving</span>" : "<span class='drift'>not ready</span>")
                       : "<span class='muted'>logged</span>";
    const counts = live ? `<div class="muted">requests ${num(live.requests)}, errors ${num(live.errors)}</div>` : "";
    const version = live ? live.version : m.versions[m.versions.length - 1];
    return `<div class="card model-card" data-model="${esc(m.name)}"><span class="muted">model</span>` +
      `<b>${esc(m.name)}</b>version ${esc(version || "-")} ${state}${counts}</div>`;
  }).join("") || "<p class='muted'>No model has logged predictions yet.</p>";
}

function renderReport(data) {
  const r = data.report, plots = data.plots;
  const drift = r.drift;
  $("summary").className = "summary" + (drift && drift.drifted ? " bad" : "");
  $("summary").innerHTML = r.summary.map((line) => `<p>${esc(line)}</p>`).join("");
  if (r.traffic) {
    const l = r.traffic.latency_ms;
    $("summary").innerHTML += `<p class="muted">latency p50 ${num(l.p50)} ms, p95 ${num(l.p95)} ms, ` +
      `p99 ${num(l.p99)} ms</p>`;
  }
  if (r.reference_available === false) {
    $("drift-table").innerHTML = `<p class="muted" id="no-reference">${esc(r.summary.find((l) =>
      l.startsWith("No drift baseline")) || "No reference statistics in this bundle.")}</p>`;
  } else if (drift) {
    const rows = [...drift.features, ...(r.prediction_drift ? [r.prediction_drift] : [])].map((f) =>
      `<tr><td>${esc(f.feature)}</td><td>${esc(f.method || "-")}</td><td>${num(f.score)}</td>` +
      `<td>${num(f.threshold)}</td><td>${num(f.n)}</td><td>${f.drifted ? "<span class='drift'>drift</span>" :
      (f.method ? "<span class='ok'>ok</span>" : `<span class='muted'>${esc(f.reason)}</span>`)}</td></tr>`);
    $("drift-table").innerHTML = "<table><tr><th>feature</th><th>test</th><th>score</th><th>threshold</th>" +
      "<th>values</th><th>status</th></tr>" + rows.join("") + "</table>" +
      `<p class="muted">dataset drift: ${drift.drifted ? "<span class='drift'>yes</span>" : "no"} ` +
      `(${pct(drift.share)} of features drifted; threshold ${pct(drift.threshold)})</p>`;
  } else {
    $("drift-table").innerHTML = "<p class='muted'>No predictions in this window.</p>";
  }
  $("drift-plot").innerHTML = plots.drift || "";
  const timeline = r.timeline;
  $("drift-began").textContent = timeline ? `${timeline.bucket} buckets; ` + (timeline.first_drift ?
    `dataset drift first at ${timeline.first_drift.slice(0, 16).replace("T", " ")} UTC` +
    (timeline.drift_since ? `, ongoing since ${timeline.drift_since.slice(0, 16).replace("T", " ")} UTC` :
     ", not in the latest bucket") : "no bucket shows dataset drift") : "";
  $("drift-timeline").innerHTML = plots.timeline || "";
  $("feature-plots").innerHTML = Object.values(plots.features || {}).map((svg) => `<figure>${svg}</figure>`).join("");
  $("traffic").innerHTML = plots.traffic || "<p class='muted'>No traffic in this window.</p>";
  $("comparison").innerHTML = plots.comparison || "<p class='muted'>No shadow or canary candidate in this window.</p>";
  const perf = r.performance || {};
  if (perf.overall) {
    const keys = ["accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2"]
      .filter((k) => k in perf.overall);
    $("performance").innerHTML = `<table><tr><th>labelled</th>${keys.map((k) => `<th>${k}</th>`).join("")}</tr>` +
      `<tr><td>${num(perf.labelled)}</td>${keys.map((k) => `<td>${num(perf.overall[k])}</td>`).join("")}</tr></table>` +
      (plots.performance || "");
  } else {
    $("performance").innerHTML = "<p class='muted'>No labels yet (POST /feedback).</p>";
  }
  if (perf.unmatched) {
    $("performance").innerHTML += `<p class="drift" id="unmatched">${num(perf.unmatched)} labels match no logged ` +
      `prediction (e.g. ${esc((perf.unmatched_examples || []).join(", "))})</p>`;
  }
  const q = r.quality;
  $("quality").innerHTML = q ? "<table><tr><th>feature</th><th>missing</th><th>outside training range</th>" +
    "<th>unseen categories</th><th>type conversions</th></tr>" + Object.entries(q.features).map(([name, f]) =>
    `<tr><td>${esc(name)}</td><td>${num(f.missing)}</td><td>${num(f.out_of_range)}</td><td>${num(f.unseen)}</td>` +
    `<td>${num(f.coerced)}</td></tr>`).join("") + "</table>" : "";
}

async function refresh() {
  try {
    const overview = await getJSON("/dashboard/api/overview");
    renderModels(overview);
    const model = $("model").value;
    if (model) {
      renderReport(await getJSON(`/dashboard/api/report?model=${encodeURIComponent(model)}&window=` +
        encodeURIComponent($("window").value)));
    }
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    $("updated").textContent = "refresh failed: " + error.message;
  }
}

$("model").addEventListener("change", refresh);
$("window").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body></html>
"""
