-- wrk script: POST /v1/calls exactly N times in all (N split across threads).
-- env: CP_KEY, CP_AGENT, CP_TO, CP_N
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
local key, agent, to = os.getenv("CP_KEY"), os.getenv("CP_AGENT"), os.getenv("CP_TO")
local total = tonumber(os.getenv("CP_N"))

setup = common.setup

local function has_work() return sent < quota end

function init(args)
  local nthreads = tonumber(os.getenv("CP_THREADS") or "2")
  quota = math.floor(total / nthreads) + ((id < total % nthreads) and 1 or 0)
  sent = 0
  body = string.format('{"agent_id":"%s","to":"%s"}', agent, to)
  headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  common.init(id)
end

function delay() return common.delay(has_work) end

function request()
  return common.request(has_work, function()
    sent = sent + 1
    return wrk.format("POST", "/v1/calls", headers, body)
  end)
end
