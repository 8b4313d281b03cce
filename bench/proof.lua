-- wrk script: GET inclusion proofs for random ids read from a file
-- (one per line; `fill` writes it), counting non-200 replies. Arguments:
-- IDS_FILE [TOKEN] [record]: with `record`, GET the records themselves
-- (`/api/v1/evidence/{id}`) instead of their proofs.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  for line in io.lines(args[1]) do
    ids[#ids + 1] = line
  end
  math.randomseed(os.time() + tid)
  bad = 0
  suffix = "/proof"
  if args[3] == "record" then
    suffix = ""
  end
  -- Bearer token of an auditor (proofs of any record need that role).
  headers = {}
  if args[2] and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/v1/evidence/" .. id .. suffix, headers)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
  end
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f non200=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad_total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
