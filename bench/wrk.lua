-- wrk script of the harness: POSTs a body template with a fresh messageId in each message,
-- optionally paced to a fixed rate, and prints one machine-readable result line.
--
-- [BENCH_RATE=R] wrk -t T -c C -d D -s bench/wrk.lua URL -- TEMPLATE PATH CONTENT_TYPE AUTH ORIGIN NONCE
--   TEMPLATE    file with the body; every "@@MESSAGE_ID@@" gets a new 41-character id
--   ORIGIN      the Origin header, or "-" for none
--   NONCE       a number that makes this run's ids differ from other runs'
--   BENCH_RATE  requests/s of each wrk thread; unset: as fast as the connections allow.
--               An environment variable because wrk decides whether the script paces
--               (defines delay()) before it hands the arguments to the threads.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *out);
]]
local CLOCK_MONOTONIC = 1
local MARK = "@@MESSAGE_ID@@"

local threads = {}

-- Runs in wrk's main Lua state, once per thread before it starts.
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local parts, path, nonce
local counter = 0
local start, slot = nil, 0
sent, late = 0, 0  -- globals: done() reads them with thread:get

local function now()
  local ts = ffi.new("bench_timespec")
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function split(text, mark)
  local out, from = {}, 1
  while true do
    local i, j = string.find(text, mark, from, true)
    if not i then break end
    table.insert(out, string.sub(text, from, i - 1))
    from = j + 1
  end
  table.insert(out, string.sub(text, from))
  return out
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  parts = split(file:read("*a"), MARK)
  file:close()
  path = args[2]
  wrk.headers["Content-Type"] = args[3]
  wrk.headers["Authorization"] = args[4]
  if args[5] ~= "-" then wrk.headers["Origin"] = args[5] end
  nonce = tonumber(args[6])
end

function request()
  local pieces = { parts[1] }
  for i = 2, #parts do
    counter = counter + 1
    -- Same length for every id, so Content-Length stays that of the template.
    pieces[#pieces + 1] = string.format("ajs-next-%08x%03d%021d", nonce, tid, counter)
    pieces[#pieces + 1] = parts[i]
  end
  sent = sent + 1
  return wrk.format("POST", path, nil, table.concat(pieces))
end

-- Open-loop pacing: request k of this thread is due at start + k / rate, whichever
-- connection is free then. A request that could not start within 1 ms of its due
-- time (every connection busy) is counted as late.
if rate > 0 then
  function delay()
    local t = now()
    if start == nil then start = t end
    slot = slot + 1
    local wait = (start + slot / rate - t) * 1000
    if wait < -1 then late = late + 1 end
    return wait > 0 and wait or 0
  end
end

function done(summary, latency, requests)
  local total_sent, total_late = 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_late = total_late + thread:get("late")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},' ..
    '"sent":%d,"late":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, total_sent, total_late))
end
