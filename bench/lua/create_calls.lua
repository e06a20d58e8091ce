-- wrk script: POST /v1/calls exactly N times in all (N split across threads).
-- env: CP_KEY, CP_AGENT, CP_TO, CP_N
local threads = {}
local key, agent, to = os.getenv("CP_KEY"), os.getenv("CP_AGENT"), os.getenv("CP_TO")
local total = tonumber(os.getenv("CP_N"))

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("CP_THREADS") or "2")
  quota = math.floor(total / nthreads) + ((id < total % nthreads) and 1 or 0)
  sent = 0
  -- wrk calls request() once on thread 0 right after init() to check the script
  -- (script_verify_request) and throws that request away: answer it with a harmless GET
  verify_pending = (id == 0)
  body = string.format('{"agent_id":"%s","to":"%s"}', agent, to)
  headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
end

-- After its quota a connection idles on a cheap 404 until the runner stops wrk (SIGINT):
-- wrk.thread:stop() would drop requests other connections already built.
function delay()
  if sent >= quota then return 50 end
  return 0
end

function request()
  if verify_pending then
    verify_pending = false
    return wrk.format("GET", "/__verify")
  end
  if sent >= quota then
    return wrk.format("GET", "/__done")
  end
  sent = sent + 1
  return wrk.format("POST", "/v1/calls", headers, body)
end
