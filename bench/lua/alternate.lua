-- request.lua, with the body alternating between two values (bench/routes.py).
--
-- Why: a route that sets a value (a pwm pin's level) does nothing when the value is already
-- set, so one fixed body would measure the no-change path after the first request. Each
-- connection alternates between body=... and alt=..., as a slider dragged back and forth.
-- A separate script because a request() function makes wrk call Lua for every request,
-- which the other runs should not pay.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "request.lua")

local plain_init = init
local requests = nil
local sent = 0

function init(args)
  local rest, alt = {}, nil
  for _, arg in ipairs(args) do
    if arg:sub(1, 4) == "alt=" then
      alt = arg:sub(5)
    else
      table.insert(rest, arg)
    end
  end
  plain_init(rest)
  requests = { wrk.format(nil, nil, nil, wrk.body), wrk.format(nil, nil, nil, alt or wrk.body) }
end

function request()
  sent = sent + 1
  return requests[sent % 2 + 1]
end
