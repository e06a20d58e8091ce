-- wrk script for bench/kamailio.py: one JSON-RPC dlg.end_dlg request (POST /RPC) per dialog
-- listed in KAM_IDS (a file, "h_entry h_id" a line), dealt round-robin to KAM_THREADS
-- threads; idling and wrk's verify request as in bench/lua/common.lua (xhttp answers the idle
-- GETs 404). Prints "ENDS ok=.. err=.." (JSON-RPC results vs errors / non-200s) at the end.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "../lua/common.lua")

setup = common.setup

local function has_work() return next_i <= #ids end

function init(args)
  ids = common.deal(os.getenv("KAM_IDS"), tonumber(os.getenv("KAM_THREADS") or "2"), id)
  next_i = 1
  ok, err = 0, 0
  headers = {["Content-Type"] = "application/json"}
  common.init(id)
end

function delay() return common.delay(has_work) end

function request()
  return common.request(has_work, function()
    local he, hid = ids[next_i]:match("^(%d+)%s+(%d+)")
    local body = string.format(
      '{"jsonrpc":"2.0","method":"dlg.end_dlg","params":[%s,%s],"id":%d}', he, hid, next_i)
    next_i = next_i + 1
    return wrk.format("POST", "/RPC", headers, body)
  end)
end

function response(status, hdrs, body)
  if status == 404 then return end   -- the idle GETs
  if status == 200 and body:find('"result"', 1, true) and not body:find('"error"', 1, true) then
    ok = ok + 1
  else
    err = err + 1
  end
end

function done(summary, latency, requests)
  common.report("ENDS", {"ok", "err"})
end
