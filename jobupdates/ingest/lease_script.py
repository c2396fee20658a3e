"""The Lua scripts of the bridges' lease (:class:`jobupdates.ingest.leadership.Lease`).

Keys (all derived from ``JOBUPDATES_BRIDGE_LEASE_KEY``): the lease itself, the
fencing token counter, the time the holder last had nothing in hand, the token
of the last lease released on a graceful stop, and the bridges' candidacies.

The lease's value is ``"<token> <holder> <acquired ms> <previous> <drained ms>"``:
the token grows with every new holder (the history's append script refuses a
batch from any other value, :mod:`jobupdates.history_script`), and
``previous``/``drained`` say how the last lease ended: ``none`` (there was
none), ``released`` (a graceful stop: everything it received was recorded),
``expired`` (a crash, a freeze or a partition) or ``transferred`` (it
re-subscribed and handed the lease to a bridge subscribed longer); with the
last two, ``drained`` is when it last reported having nothing in hand (0 if never).

A candidacy is ``"<segment> <since ms> <run id> <heartbeat ms>"``: the bridge's
latest subscription, when it began, the Redis process it is subscribed on
(``INFO`` ``run_id``: a restart changes it; ``-`` while it is not subscribed)
and when the bridge last called. A candidacy is *live* if it is subscribed on
this Redis process and its heartbeat is younger than the lease's TTL (so a holder
that stopped renewing is not live by the time its lease expires).
"""

from __future__ import annotations

__all__ = ["HOLD", "RELEASE"]

_COMMON = """
local lease, fence, drained_key, released_key, bridges = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function candidacy(entry)
  local segment, since, run, heartbeat = string.match(entry, '^(%S+) (%d+) (%S+) (%d+)$')
  return segment, tonumber(since), run, tonumber(heartbeat)
end
"""

# ARGV: holder, TTL (ms), segment ('' while not subscribed), drained ('1' if it has
# nothing in hand), the run id of the Redis it subscribed on. Returns {holder ('' if
# free), lease value ('' if free), whether the holder is subscribed on this Redis
# process (1/0), this bridge's since (ms), run id, how many other live candidates are
# subscribed on it}. A free lease goes to the live candidate subscribed longest (the
# caller if none is live); a holder that re-subscribed after it took the lease hands it
# to a live candidate subscribed longer than its new subscription (and says when it
# last had nothing in hand: now, if it has nothing in hand).
HOLD = (
    _COMMON
    + """
local me, ttl, segment = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
-- a subscription made on a Redis process that has since restarted is gone, whatever
-- its bridge believes (it may not have noticed yet)
local listening = segment ~= '' and ARGV[5] == run
local since = now
local mine = redis.call('HGET', bridges, me)
if mine then
  -- the same subscription (or none now, whose since a continued one keeps) keeps its since
  local old_segment, old_since = candidacy(mine)
  if old_segment == segment or segment == '' then
    segment, since = old_segment, old_since
  end
end
if segment == '' then segment = '-' end
redis.call('HSET', bridges, me, segment .. ' ' .. since .. ' ' .. (listening and run or '-')
  .. ' ' .. now)
local best, best_since, others = nil, nil, 0
local all = redis.call('HGETALL', bridges)
for i = 1, #all, 2 do
  local _, their_since, their_run, heartbeat = candidacy(all[i + 1])
  if heartbeat == nil or now - heartbeat > 10 * ttl then
    redis.call('HDEL', bridges, all[i])
  elseif their_run == run and now - heartbeat < ttl then
    if all[i] ~= me then others = others + 1 end
    if best == nil or their_since < best_since or (their_since == best_since and all[i] < best) then
      best, best_since = all[i], their_since
    end
  end
end
local value = redis.call('GET', lease)
if value then
  local token, holder, acquired = string.match(value, '^(%d+) (%S+) (%d+)')
  if holder == nil then
    return {value, value, 1, since, run, others}
  end
  if holder == me then
    if ARGV[4] == '1' then redis.call('SET', drained_key, now) end
    if listening and since > tonumber(acquired) and best and best ~= me and best_since < since then
      local handed = redis.call('INCR', fence) .. ' ' .. best .. ' ' .. now .. ' transferred '
        .. (redis.call('GET', drained_key) or '0')
      redis.call('SET', lease, handed, 'PX', ttl)
      redis.call('DEL', drained_key)
      return {best, handed, 1, since, run, others}
    end
    redis.call('PEXPIRE', lease, ttl)
    return {me, value, 1, since, run, others}
  end
  local theirs = redis.call('HGET', bridges, holder)
  local holder_listening = 0
  if theirs then
    local _, _, their_run, heartbeat = candidacy(theirs)
    if their_run == run and now - heartbeat < ttl then holder_listening = 1 end
  end
  return {holder, value, holder_listening, since, run, others}
end
if best and best ~= me then
  return {'', '', 0, since, run, others}
end
local token = redis.call('INCR', fence)
local previous = 'none'
if token > 1 then
  if redis.call('GET', released_key) == tostring(token - 1) then
    previous = 'released'
  else
    previous = 'expired'
  end
end
local taken = token .. ' ' .. me .. ' ' .. now .. ' ' .. previous .. ' '
  .. (redis.call('GET', drained_key) or '0')
redis.call('SET', lease, taken, 'PX', ttl)
redis.call('DEL', drained_key)
return {me, taken, 1, since, run, others}
"""
)

# ARGV: holder. Withdraws its candidacy; if it holds the lease, deletes it and records
# a graceful release (its token, and now as the time it last had nothing in hand).
RELEASE = (
    _COMMON
    + """
redis.call('HDEL', bridges, ARGV[1])
local value = redis.call('GET', lease)
if not value then return 0 end
local token, holder = string.match(value, '^(%d+) (%S+)')
if holder ~= ARGV[1] then return 0 end
redis.call('DEL', lease)
redis.call('SET', released_key, token)
redis.call('SET', drained_key, now)
return 1
"""
)
