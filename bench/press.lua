-- wrk script for flowd's press benchmarks: POST a virtual button press, print a one-line JSON
-- summary at the end (same format as post.lua).
--   FLOWD_BENCH_TOKEN  the bearer token (required)
--   FLOW_PATHS         optional: a file of request paths, one a line; each request presses a
--                      random one of them (the 10,000-flow benchmark)
--   WRK_DELAY_MS       optional: each connection waits this long before each request, to hold
--                      the rate near connections * 1000 / WRK_DELAY_MS (the half-peak run)
--   WRK_METHOD         optional: GET sends no body (the HTTP floor, GET /health)
wrk.method = os.getenv("WRK_METHOD") or "POST"
if wrk.method == "POST" then
  wrk.body = '{"key":"press","payload":{"count":1}}'
end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("FLOWD_BENCH_TOKEN")

local paths_file = os.getenv("FLOW_PATHS")
if paths_file and paths_file ~= "" then
  local paths = {}
  for line in io.lines(paths_file) do
    if line ~= "" then paths[#paths + 1] = line end
  end
  math.randomseed(os.time())
  request = function()
    return wrk.format(nil, paths[math.random(#paths)])
  end
end

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0") or 0
if delay_ms > 0 then
  delay = function() return delay_ms end
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    'SUMMARY {"requests":%d,"secs":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
