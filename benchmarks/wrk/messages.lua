-- wrk script for benchmarks.floors: every request posts a hub message with a unique message_id
-- and shipment number, built from a template file whose "@ID@" and "@NUMBER@" are replaced.
--
--   wrk -t2 -c50 -d10s -s benchmarks/wrk/messages.lua URL -- TEMPLATE RUN TOKEN [CYCLE]
--
-- Ids are RUN .. thread number .. counter: unique per thread without any coordination. With
-- CYCLE, each thread posts ids 1..CYCLE over and over, so that a second run with the same RUN
-- and a CYCLE no larger than what every thread had recorded in the first posts only duplicates.
-- (Id 0 of thread 1 is never sent: wrk calls request() once on thread 1 to check the script.)
-- done() prints one line "FLOORS {json}" with the figures benchmarks.floors reads.

local threads = {}
counter = 0 -- a global: done() reads it with thread:get
local cycle = 0
local run, token, before, middle, after

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local template = file:read("*a")
  file:close()
  run, token = args[2], args[3]
  cycle = tonumber(args[4] or "0")
  local id_at = assert(string.find(template, "@ID@", 1, true))
  local number_at = assert(string.find(template, "@NUMBER@", 1, true))
  before = string.sub(template, 1, id_at - 1)
  middle = string.sub(template, id_at + 4, number_at - 1)
  after = string.sub(template, number_at + 8)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Hub-Token"] = token
end

function request()
  local n = counter
  if cycle > 0 then
    n = 1 + counter % cycle -- ids 1..CYCLE (see below for 0)
  end
  counter = counter + 1
  local id = string.format("%s%02d%08d", run, tid, n)
  local number = string.format("W%s%02d%07d", run, tid, n)
  return wrk.format(nil, nil, nil, before .. id .. middle .. number .. after)
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    table.insert(counts, tostring(thread:get("counter")))
  end
  local e = summary.errors
  io.write(string.format(
    'FLOORS {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
      .. '"per_thread": [%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(counts, ", ")))
end
