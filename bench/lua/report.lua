-- Same request every time (the token comes from wrk -H); prints one machine-readable line.
-- Shared by every scenario: bench/run parses the RESULT line.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local e = summary.errors
   local wraps = 0
   for _, t in ipairs(threads) do wraps = wraps + (t:get("wraps") or 0) end
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d wraps=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout, wraps))
end
