-- wrk script: POST the JSON body in $BENCH_BODY to $BENCH_PATH. The placeholder UUID tail
-- "8000-000000000000" becomes a per-thread, per-request value, so that every call is a new
-- hookInstance (hook calls) or a new card id (feedback), as from a real EHR.
-- With $BENCH_TOKENS (a file of signed JWTs, one per line) each request carries the next token
-- as its bearer token, as a CDS client sends a fresh one per call.
local counter = 0
local tokens = nil

local head, tail = nil, nil
local path = os.getenv("BENCH_PATH")

local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  local body = file:read("*a")
  file:close()
  local first, last = body:find("8000-000000000000", 1, true)
  head, tail = body:sub(1, first - 1), body:sub(last + 1)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local token_file = os.getenv("BENCH_TOKENS")
  if token_file then
    tokens = {}
    for line in io.lines(token_file) do
      tokens[#tokens + 1] = line
    end
  end
end

function request()
  counter = counter + 1
  local body = head .. string.format("8%03d-%012d", thread_id or 0, counter) .. tail
  if tokens then
    -- past the last token it is reused: the service refuses the replay (counted as an error)
    wrk.headers["Authorization"] = "Bearer " .. tokens[math.min(counter, #tokens)]
  end
  return wrk.format(nil, path, nil, body)
end
