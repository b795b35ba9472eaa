-- wrk 4.x script: a fixed number of requests, closed loop, every latency recorded.
--
-- Run as `wrk -t C -c C ...`: one connection per wrk thread, so each thread strictly alternates
-- request() and response() and its latencies are exact (wrk's own histogram would be "corrected" for
-- coordinated omission with synthetic samples, which inflates the tail of a closed-loop test).
-- Thread i sends its share of BENCH_REQUESTS and stops; the last thread to finish interrupts wrk's
-- main thread (SIGINT ends its sleep), and done() writes every latency to BENCH_OUT as JSON.
--
-- Paced (open-loop) runs: with BENCH_INTERVAL_MS set, each connection sends on its own schedule, one
-- request every BENCH_INTERVAL_MS (the threads' schedules staggered evenly), instead of right after the
-- last answer; a connection still waiting when its slot comes sends on the answer and skips the missed
-- slots (counted in "late"), so the offered rate drops only where answers are slow.
-- Every answer's status is kept too, and 503s that carry Retry-After are counted.
--
-- Environment: BENCH_BODY (file with the request body), BENCH_CONTENT_TYPE, BENCH_REQUESTS,
-- BENCH_THREADS (= wrk -t), BENCH_OUT (JSON result path), BENCH_INTERVAL_MS (optional).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
typedef union { char size[64]; long align; } bench_sem;
int clock_gettime(int clock, bench_timespec *tp);
int sem_init(bench_sem *sem, int pshared, unsigned int value);
int sem_post(bench_sem *sem);
int sem_getvalue(bench_sem *sem, int *value);
void *malloc(size_t size);
int getpid(void);
int kill(int pid, int sig);
]]

local CLOCK_MONOTONIC, SIGINT = 1, 2
local clock = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

-- Main Lua state: hand each thread its quota and the shared "threads finished" semaphore.
local threads = {}
local total = tonumber(os.getenv("BENCH_REQUESTS"))
local thread_count = tonumber(os.getenv("BENCH_THREADS"))
local interval_s = tonumber(os.getenv("BENCH_INTERVAL_MS") or "")
if interval_s then
  interval_s = interval_s / 1000
end
local finished_sem = nil

function setup(thread)
  if finished_sem == nil then
    finished_sem = ffi.cast("bench_sem *", ffi.C.malloc(ffi.sizeof("bench_sem")))
    ffi.C.sem_init(finished_sem, 0, 0)
  end
  local index = #threads
  local quota = math.floor(total / thread_count)
  if index < total % thread_count then
    quota = quota + 1
  end
  thread:set("quota", quota)
  thread:set("offset", index / thread_count) -- this thread's place in the paced schedule
  thread:set("sem_address", tonumber(ffi.cast("intptr_t", finished_sem)))
  table.insert(threads, thread)
end

-- Thread Lua states. Globals, not locals: done() reads them with thread:get().
local request_text, sem, sent_at, next_at
latencies, statuses, answered, not_2xx, first_sent, last_answered = {}, {}, 0, 0, -1, -1
retry_after_503, late = 0, 0

function init(args)
  local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  local body = file:read("*a")
  file:close()
  request_text = wrk.format("POST", nil, { ["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") }, body)
  sem = ffi.cast("bench_sem *", sem_address)
  if interval_s then
    next_at = now() + offset * interval_s
  end
end

if interval_s then
  -- wrk asks before each request how many milliseconds to wait.
  function delay()
    local t = now()
    local wait = next_at - t
    if wait < 0 then
      late = late + 1
      next_at, wait = t, 0
    end
    next_at = next_at + interval_s
    return math.floor(wait * 1000)
  end
end

function request()
  sent_at = now()
  return request_text
end

function response(status, headers, body)
  local t = now()
  answered = answered + 1
  latencies[answered] = (t - sent_at) * 1e6
  statuses[answered] = status
  if status == 503 and (headers["retry-after"] or headers["Retry-After"]) then
    retry_after_503 = retry_after_503 + 1
  end
  if answered == 1 then
    first_sent = sent_at -- not set in request(): wrk calls it once more to validate the script
  end
  if status < 200 or status > 299 then
    not_2xx = not_2xx + 1
  end
  if answered == quota then
    last_answered = t
    wrk.thread:stop()
    ffi.C.sem_post(sem)
    local value = ffi.new("int[1]")
    ffi.C.sem_getvalue(sem, value)
    if value[0] >= thread_count then
      ffi.C.kill(ffi.C.getpid(), SIGINT) -- every thread is done: end wrk's timed sleep now
    end
  end
end

function done(summary, latency, requests)
  local parts = {}
  for _, thread in ipairs(threads) do
    local values = thread:get("latencies") or {}
    local codes = thread:get("statuses") or {}
    local formatted, formatted_codes = {}, {}
    for i = 1, #values do
      formatted[i] = string.format("%.1f", values[i])
      formatted_codes[i] = string.format("%d", codes[i])
    end
    table.insert(parts, string.format(
      '{"quota":%d,"answered":%d,"not_2xx":%d,"first_sent":%.6f,"last_answered":%.6f,"latencies_us":[%s],'
        .. '"statuses":[%s],"retry_after_503":%d,"late":%d}',
      thread:get("quota"), thread:get("answered"), thread:get("not_2xx"),
      thread:get("first_sent"), thread:get("last_answered"), table.concat(formatted, ","),
      table.concat(formatted_codes, ","), thread:get("retry_after_503"), thread:get("late")))
  end
  local e = summary.errors
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  out:write(string.format(
    '{"wrk_requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"threads":[%s]}\n',
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
  out:close()
end
