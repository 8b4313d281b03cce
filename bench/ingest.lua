-- wrk script: single-record POST /api/v1/evidence with a unique body per
-- request (no duplicates), counting non-201 replies.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  run = args[1] or tostring(os.time())
  -- Optional bearer token (auth on); none with --insecure-no-auth.
  headers = { ["Content-Type"] = "application/json" }
  if args[2] and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  counter = 0
  bad = 0
end

function request()
  counter = counter + 1
  local body = string.format('{"run":"%s","thread":%d,"n":%d,"report":"ok"}', run, tid, counter)
  return wrk.format("POST", "/api/v1/evidence", headers, body)
end

function response(status, headers, body)
  if status ~= 201 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
  end
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f non201=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad_total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
