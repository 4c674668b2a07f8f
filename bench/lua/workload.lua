-- wrk script for bench/webdav.py. The workload is chosen by $BENCH_WORKLOAD:
--   get        GET of the URL (a 4 KiB file)
--   put        PUT of 4096 bytes, rotating over p0.bin .. p<N-1>.bin under the URL
--              (N = $PUT_PATHS, default 8; the fixtures create them, so every PUT overwrites)
--   propfind0  PROPFIND Depth: 0, allprop, on the URL (a file)
--   propfind1  PROPFIND Depth: 1, allprop, on the URL (a collection of 1,000 files)
-- response() tallies every HTTP status code (wrk itself only counts statuses >= 400);
-- done() prints one line "WRKJSON {...}" with counts, errors, latency and the statuses.
local workload = os.getenv("BENCH_WORKLOAD") or "get"
local propfind_body = '<?xml version="1.0" encoding="utf-8"?>\n'
  .. '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>\n'

if workload == "propfind0" or workload == "propfind1" then
  wrk.method = "PROPFIND"
  wrk.headers["Depth"] = workload == "propfind0" and "0" or "1"
  wrk.headers["Content-Type"] = "application/xml"
  wrk.body = propfind_body
elseif workload == "put" then
  local n = tonumber(os.getenv("PUT_PATHS") or "8")
  local body = string.rep("x", 4096)
  local reqs, i = {}, 0
  function init(args)
    for k = 0, n - 1 do
      reqs[k] = wrk.format("PUT", wrk.path .. "p" .. k .. ".bin",
        { ["Content-Type"] = "application/octet-stream" }, body)
    end
  end
  function request()
    local r = reqs[i]
    i = (i + 1) % n
    return r
  end
elseif workload ~= "get" then
  error("unknown BENCH_WORKLOAD " .. workload)
end

statuses = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do total[code] = (total[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(total) do table.insert(parts, string.format('"%d":%d', code, n)) end
  table.sort(parts)
  local s, e = summary, summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,'
    .. '"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,'
    .. '"lat_p99_us":%d,"lat_max_us":%d,"statuses":{%s}}\n',
    s.requests, s.duration, s.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50.0), latency:percentile(99.0), latency.max,
    table.concat(parts, ",")))
end
