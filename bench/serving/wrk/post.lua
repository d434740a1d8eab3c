-- wrk script of the serving benchmark: POST one fixed JSON body (from $BENCH_BODY) to the URL's path and, at
-- the end, print one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).
-- errors.status is wrk's count of responses with a status of 400 or more (its "Non-2xx or 3xx" line); no
-- response() hook is installed, so wrk does not hand every response to Lua and stays cheap on a 2-core box.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, ' ..
    '"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
