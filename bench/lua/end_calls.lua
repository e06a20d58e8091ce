-- wrk script: POST /v1/calls/{id}/end once for every id in CP_IDS (a file, one id a line),
-- ids dealt round-robin to threads; optional pacing: CP_DELAY_MS between a connection's
-- requests (steady-rate runs). Counts statuses per thread and prints them at the end.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
local key = os.getenv("CP_KEY")
local delay_ms = tonumber(os.getenv("CP_DELAY_MS") or "0")

setup = common.setup

local function has_work() return next_i <= #ids end

function init(args)
  ids = common.deal(os.getenv("CP_IDS"), tonumber(os.getenv("CP_THREADS") or "2"), id)
  next_i = 1
  ok, other = 0, 0
  headers = {["Authorization"] = "Bearer " .. key}
  common.init(id)
end

function delay() return common.delay(has_work, delay_ms) end

function request()
  return common.request(has_work, function()
    local path = "/v1/calls/" .. ids[next_i] .. "/end"
    next_i = next_i + 1
    return wrk.format("POST", path, headers, nil)
  end)
end

function response(status, hdrs, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  common.report("ENDS", {"ok", "other"})
end
