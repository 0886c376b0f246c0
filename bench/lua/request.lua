-- One request shape for every wrk run in the harness (bench/load.py builds the arguments).
--
-- Why a script: wrk alone cannot send POSTs with headers, stop after an exact number of
-- responses, or report its percentiles in a machine-readable form.
--
-- Arguments after "--": METHOD, then any of
--   max=N           print BENCH_REACHED after N responses so the harness can stop wrk (SIGINT)
--   body=TEXT       request body
--   Name: value     a request header
local max_responses = 0
local counted = 0
local announced = false

function init(args)
  for i, arg in ipairs(args) do
    if i == 1 then
      wrk.method = arg
    elseif arg:sub(1, 4) == "max=" then
      max_responses = tonumber(arg:sub(5))
    elseif arg:sub(1, 5) == "body=" then
      wrk.body = arg:sub(6)
    else
      local name, value = arg:match("^([^:]+):%s*(.*)$")
      if name then
        wrk.headers[name] = value
      end
    end
  end
  if max_responses == 0 then
    -- Without a count, do not ask wrk to hand each response to Lua: that costs wrk CPU.
    response = nil
  end
end

function response(status, headers, body)
  counted = counted + 1
  if counted >= max_responses and not announced then
    announced = true
    -- wrk's main thread sleeps for the whole -d; the harness interrupts it on this line.
    io.write("BENCH_REACHED\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
