-- Shared by the wrk scripts (dofile'd into every Lua state wrk makes):
--   * thread numbering (setup) and the per-thread totals printed by done();
--   * dealing the lines of a file round-robin to the threads;
--   * wrk's verify request: wrk calls request() once on thread 0 right after init() to check
--     the script (script_verify_request) and throws that request away, so it must not use up
--     a unit of work; it gets a harmless GET;
--   * idling: a connection whose work is done sends a cheap GET every 50 ms until the runner
--     stops wrk with SIGINT (wrk.thread:stop() would drop requests other connections built).
local M = {}
local threads = {}
local verify_pending = false

function M.setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Called from init(): this thread's share of the lines of path.
function M.deal(path, nthreads, id)
  local mine, i = {}, 0
  for line in io.lines(path) do
    if i % nthreads == id then table.insert(mine, line) end
    i = i + 1
  end
  return mine
end

function M.init(id)
  verify_pending = (id == 0)
end

-- pause: the delay between a connection's requests while it still has work.
function M.delay(has_work, pause)
  if not has_work() then return 50 end
  return pause or 0
end

-- next_request() builds a real request; it is called only when has_work() is true.
function M.request(has_work, next_request)
  if verify_pending then
    verify_pending = false
    return wrk.format("GET", "/__verify")
  end
  if not has_work() then
    return wrk.format("GET", "/__done")
  end
  return next_request()
end

-- Sums the named per-thread counters and prints "<label> a=.. b=..".
function M.report(label, names)
  local parts = {}
  for _, name in ipairs(names) do
    local total = 0
    for _, t in ipairs(threads) do total = total + t:get(name) end
    table.insert(parts, string.format("%s=%d", name, total))
  end
  io.write(label .. " " .. table.concat(parts, " ") .. "\n")
end

return M
