"""The Lua script that records a batch in the history (``History.append_many``)."""

from __future__ import annotations

__all__ = ["APPEND"]

# KEYS: the stream, each update's state key, then the lost key. ARGV: max entries,
# max age (ms, 0 = no limit), state TTL (s), the position the caller recorded last
# ('' for none), then four per update: job id, frame, ingest entry ID ('' for
# none), payload digest ('' for none). Returns the stream's last ID if it was
# older than that position (Redis lost what came after it: the lost key now holds
# the position), else '', then the new entries' IDs, in order. One call records a
# whole batch, atomically.
APPEND = """
local lost = ''
if ARGV[4] ~= '' then
  local last = '0-0'
  if redis.call('EXISTS', KEYS[1]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[1])
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then last = info[i + 1] end
    end
  end
  local lm, ls = string.match(last, '(%d+)-(%d+)')
  local em, es = string.match(ARGV[4], '(%d+)-(%d+)')
  lm, ls, em, es = tonumber(lm), tonumber(ls), tonumber(em), tonumber(es)
  if lm < em or (lm == em and ls < es) then
    redis.call('SET', KEYS[#KEYS], ARGV[4])
    lost = last
  end
end
local ids = {lost}
for k = 1, #KEYS - 2 do
  local at = 4 + (k - 1) * 4
  local fields = {'j', ARGV[at + 1], 'f', ARGV[at + 2]}
  if ARGV[at + 3] ~= '' then
    table.insert(fields, 'i')
    table.insert(fields, ARGV[at + 3])
  end
  if ARGV[at + 4] ~= '' then
    table.insert(fields, 'd')
    table.insert(fields, ARGV[at + 4])
  end
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
  redis.call('SET', KEYS[k + 1], id .. ' ' .. ARGV[at + 2], 'EX', ARGV[3])
  ids[k + 1] = id
end
local max_age = tonumber(ARGV[2])
if max_age > 0 and #ids > 1 then
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age
  redis.call('XTRIM', KEYS[1], 'MINID', '~', oldest)
end
return ids
"""
