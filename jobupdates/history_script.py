"""The Lua script that records a batch in the history (``History.append_many``)."""

from __future__ import annotations

__all__ = ["APPEND", "FENCED", "OK"]

OK = "ok"
"""The batch is recorded (now, or by an earlier call with the same batch ID)."""
FENCED = "fenced"
"""Nothing was recorded: the caller no longer holds the lease it named."""

# KEYS: the stream, each update's state key, then the lost key, the batch key (the
# last batch recorded: its ID, then the position before it, its gap's ('-' for none)
# and its updates' positions) and the lease key. ARGV: max entries, max age (ms, 0 =
# no limit), state TTL (s), the position the caller recorded last ('' for none), the
# lease value the caller holds ('' for no lease), the batch ID, the reason of a gap to
# record before the batch ('' for none), then four per update: job id, frame, ingest
# entry ID ('' for none), payload digest ('' for none).
#
# Returns FENCED if the lease does not hold that value (nothing written), else OK,
# then: the stream's last ID if it was older than the caller's last position (Redis
# lost what came after it: the lost key now holds that position) else '', the
# position recorded before the batch ('0-0' for none), the gap's position ('' for
# none), then the updates' positions, in order. A batch ID already recorded last is
# answered from the batch key, writing nothing (a retry whose reply was lost). The
# position before a batch is the stream's newest entry's (trimming only ever takes
# the oldest, and never the newest). One call records a whole batch, atomically.
APPEND = """
local n = #KEYS - 4
local lost_key, batch_key, lease_key = KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]
local last_batch = redis.call('GET', batch_key)
if last_batch and string.sub(last_batch, 1, #ARGV[6] + 1) == ARGV[6] .. ' ' then
  local reply = {'ok', ''}
  for part in string.gmatch(string.sub(last_batch, #ARGV[6] + 2), '%S+') do
    if part == '-' then reply[#reply + 1] = '' else reply[#reply + 1] = part end
  end
  return reply
end
if ARGV[5] ~= '' and redis.call('GET', lease_key) ~= ARGV[5] then
  return {'fenced'}
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = '0-0'
if newest[1] then last = newest[1][1] end
local lost = ''
if ARGV[4] ~= '' then
  local lm, ls = string.match(last, '(%d+)-(%d+)')
  local em, es = string.match(ARGV[4], '(%d+)-(%d+)')
  lm, ls, em, es = tonumber(lm), tonumber(ls), tonumber(em), tonumber(es)
  if lm < em or (lm == em and ls < es) then
    redis.call('SET', lost_key, ARGV[4])
    lost = last
  end
end
local gap = ''
if ARGV[7] ~= '' then
  gap = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'g', ARGV[7])
end
local reply = {'ok', lost, last, gap}
local record = {ARGV[6], last, gap == '' and '-' or gap}
for k = 1, n do
  local at = 7 + (k - 1) * 4
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
  reply[#reply + 1] = id
  record[#record + 1] = id
end
local max_age = tonumber(ARGV[2])
if max_age > 0 and #record > 3 then
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age
  redis.call('XTRIM', KEYS[1], 'MINID', '~', oldest)
end
redis.call('SET', batch_key, table.concat(record, ' '))
return reply
"""
