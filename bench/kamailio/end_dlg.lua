-- wrk script for bench/kamailio.py: one JSON-RPC dlg.end_dlg request (POST /RPC) per dialog
-- listed in KAM_IDS (a file, "h_entry h_id" a line), dealt round-robin to KAM_THREADS
-- threads. When its dialogs are used up a connection idles on a cheap GET (xhttp answers
-- 404) until the runner stops wrk with SIGINT, as bench/lua/end_calls.lua does.
-- Prints "ENDS ok=.. err=.." (JSON-RPC results vs errors / non-200s) at the end.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("KAM_THREADS") or "2")
  ids = {}
  local i = 0
  for line in io.lines(os.getenv("KAM_IDS")) do
    if i % nthreads == id then table.insert(ids, line) end
    i = i + 1
  end
  next_i = 1
  -- wrk calls request() once on thread 0 right after init() to check the script
  -- (script_verify_request) and throws that request away: answer it without using an id,
  -- or one dialog would never be ended
  verify_pending = (id == 0)
  ok, err = 0, 0
  headers = {["Content-Type"] = "application/json"}
end

function delay()
  if next_i > #ids then return 50 end
  return 0
end

function request()
  if verify_pending then
    verify_pending = false
    return wrk.format("GET", "/__verify")
  end
  if next_i > #ids then
    return wrk.format("GET", "/__done")
  end
  local he, hid = ids[next_i]:match("^(%d+)%s+(%d+)")
  local body = string.format(
    '{"jsonrpc":"2.0","method":"dlg.end_dlg","params":[%s,%s],"id":%d}', he, hid, next_i)
  next_i = next_i + 1
  return wrk.format("POST", "/RPC", headers, body)
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
  local tok, terr = 0, 0
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    terr = terr + t:get("err")
  end
  io.write(string.format("ENDS ok=%d err=%d\n", tok, terr))
end
