-- The raters of bench/label_load.py for wrk (Debian's `wrk`), a compiled load generator that leaves the cores to the server.
--
-- Run by label_load.py as `wrk -t N -c N -d Ss -s bench/label_load.lua URL`: one wrk thread per rater, each with one
-- connection, so a thread's globals are its rater's state. Environment:
--   LABEL_LOAD_TOKENS   a file with one API token per line (rater i is line i)
--   LABEL_LOAD_OUT      the file this script writes its results to (see done())
--   LABEL_LOAD_COMBINED "1": one call per label (label?next=1 carries the next lease); else next/ then label/
--   LABEL_LOAD_THINK_MS a rater's pause after each answer, in ms (0: at full speed)
--   LABEL_LOAD_THINK_SPREAD "1": that pause on average, drawn evenly from half to one and a half times it, and before the
--                       first call from none to it (load_generators.think_pause_ms)
-- Each rater asks next/ when it holds nothing, labels what it holds (the same label again after an error: the API is
-- idempotent), and remembers the comparisons the server acknowledged (201), for the audit, and the label it had sent
-- when the run stopped.

local tokens = {}
for line in io.lines(os.getenv("LABEL_LOAD_TOKENS")) do
  tokens[#tokens + 1] = line
end
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("rater", counter)
  table.insert(threads, thread)
end

local choices = { "left", "right", "left", "tie", "right", "both_bad" }
local combined = os.getenv("LABEL_LOAD_COMBINED") == "1"
local think = tonumber(os.getenv("LABEL_LOAD_THINK_MS") or "0")
local spread = os.getenv("LABEL_LOAD_THINK_SPREAD") == "1"
local holding, sent, labels = nil, nil, 0
acked, repeats, empty, failed, inflight = "", 0, 0, 0, 0 -- globals: done() reads them through thread:get
local headers, waiting = nil, 0

function init(args)
  headers = { ["Authorization"] = "Token " .. tokens[rater], ["Content-Type"] = "application/json" }
  if spread then
    math.randomseed(os.time() * 1000 + rater) -- each thread is a Lua state of its own, seeded alike unless told
    waiting = math.floor(think * math.random())
  end
end

function delay()
  local wait = waiting
  waiting = spread and math.floor(think * (0.5 + math.random())) or think
  return wait
end

function request()
  if holding == nil then
    sent = nil
    return wrk.format("GET", "/api/v1/comparisons/next/", headers)
  end
  sent, inflight = holding, holding
  local i = labels % #choices
  local body = string.format('{"choice": "%s", "strength": %d, "time_on_task_ms": 1000}', choices[(i + rater) % #choices + 1], 1 + labels % 3)
  return wrk.format("POST", "/api/v1/comparisons/" .. holding .. "/label/" .. (combined and "?next=1" or ""), headers, body)
end

function response(status, _, body)
  inflight = 0
  if sent == nil then -- an answer to next/
    if status == 200 then
      holding = body:match('^{%s*"id"%s*:%s*(%d+)')
    elseif status == 204 then
      empty = empty + 1
      waiting = 200 -- nothing to label now: ask again in a moment
    else
      failed = failed + 1
    end
    return
  end
  if status == 201 or status == 200 then
    if status == 201 then
      acked = acked .. sent .. ","
    else
      repeats = repeats + 1
    end
    labels = labels + 1
    holding = combined and body:match('"next"%s*:%s*{%s*"id"%s*:%s*(%d+)') or nil
  else
    failed = failed + 1 -- 429, 503, 409...: the same label is sent again
  end
end

function done(summary, latency, _)
  local out = io.open(os.getenv("LABEL_LOAD_OUT"), "w")
  out:write(string.format("requests %d\nduration_us %d\n", summary.requests, summary.duration))
  out:write(string.format("socket_errors %d %d %d %d\nstatus_errors %d\n", summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status))
  for _, q in ipairs({ 50, 95, 99 }) do
    out:write(string.format("latency_p%d_us %d\n", q, latency:percentile(q)))
  end
  out:write(string.format("latency_max_us %d\n", latency.max))
  for _, thread in ipairs(threads) do
    -- inflight: the label sent when wrk stopped, whose answer never came (stored or not, the rater cannot know)
    out:write(string.format("rater %d %d %d %d %s %s\n", thread:get("rater"), thread:get("repeats"), thread:get("empty"),
      thread:get("failed"), thread:get("inflight"), thread:get("acked")))
  end
  out:close()
end
