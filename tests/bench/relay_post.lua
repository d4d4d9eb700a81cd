-- wrk script: POST 100 KB shares to a relay, as a cross-check of `cargo xtask bench relay`.
--   wrk -t2 -c8 -d15s -s tests/bench/relay_post.lua http://127.0.0.1:PORT/api/shares
-- wrk counts every answer other than 2xx/3xx as "Non-2xx or 3xx responses"; this script also
-- prints how many answers were not 201.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("0123456789", 10000)

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init()
  not_created = 0
end

function response(status)
  if status ~= 201 then
    not_created = not_created + 1
  end
end

function done()
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("not_created")
  end
  io.write(string.format("answers other than 201: %d\n", total))
end
