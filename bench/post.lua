-- wrk script for the request/reply benchmark (Node-RED, the bare-HTTP ceiling, flowd's webhook):
-- POST the anchor's small JSON event body, print a one-line JSON summary at the end (the same
-- format as press.lua). From ../shared/anchors/post.lua.
wrk.method = "POST"
wrk.body   = '{"key":"abc","payload":{"count":1}}'
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    'SUMMARY {"requests":%d,"secs":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
