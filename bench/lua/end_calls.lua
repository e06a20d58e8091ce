-- wrk script: POST /v1/calls/{id}/end once for every id in CP_IDS (a file, one id a line),
-- ids dealt round-robin to threads; optional pacing: CP_DELAY_MS between a connection's
-- requests (steady-rate runs). Counts statuses per thread and prints them at the end.
local threads = {}
local key = os.getenv("CP_KEY")
local delay_ms = tonumber(os.getenv("CP_DELAY_MS") or "0")

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("CP_THREADS") or "2")
  ids = {}
  local i = 0
  for line in io.lines(os.getenv("CP_IDS")) do
    if i % nthreads == id then table.insert(ids, line) end
    i = i + 1
  end
  next_i = 1
  ok, other = 0, 0
  -- wrk calls request() once on thread 0 right after init() to check the script
  -- (script_verify_request) and throws that request away: answer it with a harmless GET
  verify_pending = (id == 0)
  headers = {["Authorization"] = "Bearer " .. key}
end

-- When its ids are used up a connection idles on a cheap 404 until the runner stops wrk
-- (SIGINT): wrk.thread:stop() would drop requests other connections already built.
function delay()
  if next_i > #ids then return 50 end
  return delay_ms
end

function request()
  if verify_pending then
    verify_pending = false
    return wrk.format("GET", "/__verify")
  end
  if next_i > #ids then
    return wrk.format("GET", "/__done")
  end
  local path = "/v1/calls/" .. ids[next_i] .. "/end"
  next_i = next_i + 1
  return wrk.format("POST", path, headers, nil)
end

function response(status, hdrs, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local tok, tother = 0, 0
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    tother = tother + t:get("other")
  end
  io.write(string.format("ENDS ok=%d other=%d\n", tok, tother))
end
