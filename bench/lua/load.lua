-- One wrk script for every stage of bench/run.py. Configured through the environment:
--   BENCH_METHOD        GET or POST (default GET)
--   BENCH_PATH          request path (default /)
--   BENCH_BODY_FILE     file whose contents are the request body (optional)
--   BENCH_CONTENT_TYPE  Content-Type of the body (optional)
--   BENCH_AUTH_FILE     file with one Authorization header value per line; requests cycle
--                       through them, starting at a random line per thread (optional)
--   BENCH_DELAY_MS      fixed think time per connection before each request: turns wrk into
--                       a rate-limited (closed-loop) generator, rate ~= connections / delay
--   BENCH_STOP_AFTER    stop the thread after this many responses (run with -t 1)
--   BENCH_OUT           file the summary is written to, as one JSON object
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local content_type = os.getenv("BENCH_CONTENT_TYPE")
local body = nil
local auths = {}
local index = 1
local static_request = nil

local function read_file(name)
  local f = assert(io.open(name, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then body = read_file(body_file) end
local auth_file = os.getenv("BENCH_AUTH_FILE")
if auth_file and auth_file ~= "" then
  for line in io.lines(auth_file) do
    if line ~= "" then auths[#auths + 1] = line end
  end
end

local function headers_for(auth)
  local h = {}
  if content_type then h["Content-Type"] = content_type end
  if auth then h["Authorization"] = auth end
  return h
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  if #auths > 0 then index = math.random(#auths) end
  if #auths <= 1 then
    static_request = wrk.format(method, path, headers_for(auths[1]), body)
  end
end

function request()
  if static_request then return static_request end
  local auth = auths[index]
  index = index + 1
  if index > #auths then index = 1 end
  return wrk.format(method, path, headers_for(auth), body)
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms and delay_ms > 0 then
  function delay()
    -- +-10% jitter so the connections do not fire in lock-step
    return delay_ms * (0.9 + 0.2 * math.random())
  end
end

local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "")
if stop_after and stop_after > 0 then
  local seen = 0
  function response(status, headers, body)
    seen = seen + 1
    if seen >= stop_after then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local out = os.getenv("BENCH_OUT")
  local e = summary.errors
  local json = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "lat_mean_us": %.1f, ' ..
    '"lat_p50_us": %d, "lat_p90_us": %d, "lat_p99_us": %d, "lat_max_us": %d}',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max)
  if out and out ~= "" then
    local f = assert(io.open(out, "w"))
    f:write(json)
    f:close()
  else
    io.write(json .. "\n")
  end
end
