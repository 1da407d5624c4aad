-- A new token on every request: each wrk thread reads its own file of pre-minted tokens
-- (<prefix>.<thread number>, one token a line, made by bench-mint) and sends each token once.
--   wrk -t N -s rotate.lua URL -- <prefix> <N> [stop|wrap [limit]]
-- At the end of its file a thread either stops (default: no token is ever sent twice; when
-- every thread has stopped, the run ends early via SIGINT to wrk, so the duration and req/s
-- stay exact) or starts over ("wrap", counted and reported). With a limit, a thread uses at
-- most that many tokens of its file.
-- A line "<token> <proof>" (DPoP pools, made by bench-mint dpop) is sent as
-- "Authorization: DPoP <token>" with "DPoP: <proof>"; a line without a space as a bearer token.
-- Lines beyond the limit are spares: once a thread has used its limit, the few requests its
-- connections still make while wrk stops take spares rather than repeating the last request
-- (a DPoP proof must never be sent twice: the module refuses a replay).
local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local f, prefix, mode, last
local limit, used = math.huge, 0
wraps = 0
nthreads = 0

function init(args)
   prefix = args[1]
   nthreads = tonumber(args[2])
   mode = args[3] or "stop"
   if args[4] then limit = tonumber(args[4]) end
   f = assert(io.open(prefix .. "." .. tid, "r"))
   os.remove(prefix .. ".done." .. tid)
end

local function finished()
   -- This thread has used all its tokens: stop it, and end wrk once every thread is done.
   local mark = io.open(prefix .. ".done." .. tid, "w")
   mark:close()
   wrk.thread:stop()
   local all = true
   for i = 0, nthreads - 1 do
      local m = io.open(prefix .. ".done." .. i, "r")
      if m then m:close() else all = false end
   end
   -- SIGINT makes wrk end the run and report (popen, not os.execute: system() ignores SIGINT
   -- in wrk while the shell runs).
   if all then io.popen("kill -INT $PPID"):close() end
end

local function format(line)
   local sp = line:find(" ", 1, true)
   if sp then
      return wrk.format(nil, nil, { ["Authorization"] = "DPoP " .. line:sub(1, sp - 1),
                                    ["DPoP"] = line:sub(sp + 1) })
   end
   return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line })
end

function request()
   local tok
   if used < limit then tok = f:read("*l") end
   if tok then used = used + 1 end
   if not tok then
      if mode == "wrap" then
         wraps = wraps + 1
         f:seek("set", 0)
         tok = f:read("*l")
         used = 1
      else
         if last then
            finished()
            local spare = f:read("*l")
            if spare then return format(spare) end
            return last
         end
         error("no tokens in " .. prefix .. "." .. tid)
      end
   end
   last = format(tok)
   return last
end

function done(summary, latency, requests)
   local e = summary.errors
   local w = 0
   for _, t in ipairs(threads) do w = w + (t:get("wraps") or 0) end
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d wraps=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout, w))
end
