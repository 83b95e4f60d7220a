-- wrk script for bench/startup.py: a mix of first-line hook calls ($BENCH_FIRST, a JSON body),
-- second-line hook calls ($BENCH_SECOND) and discovery GETs, in turn, to $BENCH_PATH. Each hook
-- call gets a new hookInstance: the placeholder tail "8000-000000000000" becomes the run number
-- ($BENCH_RUN, one wrk thread a run) and a counter.
local path = os.getenv("BENCH_PATH")
local run = tonumber(os.getenv("BENCH_RUN"))
local counter = 0
local bodies = {}

local function split(name)
  local file = assert(io.open(os.getenv(name), "rb"))
  local body = file:read("*a")
  file:close()
  local first, last = body:find("8000-000000000000", 1, true)
  return { body:sub(1, first - 1), body:sub(last + 1) }
end

function init(args)
  bodies = { split("BENCH_FIRST"), split("BENCH_SECOND") }
end

function request()
  counter = counter + 1
  local kind = counter % 3
  if kind == 0 then
    return wrk.format("GET", "/cds-services", {}, nil)
  end
  local parts = bodies[kind]
  local body = parts[1] .. string.format("8%03d-%012d", run, counter) .. parts[2]
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

