"""The Lua scripts that move messages between lists, reservations and leases, atomically.

Each runs inside Redis as one step, so a worker killed at any point, or two
processes sweeping at once, never leave a message half-moved. Times: lease
expiries use Redis's own clock (`TIME`), so hosts whose clocks drift still
agree on who is alive; reserve times in kombu's `unacked_index` use the
caller's clock, as kombu's own consumer and restore do.

A worked example, worker `w` (lease 10 s) serving `sluiceway.churn.a`:

- t=0 `RESERVE` pops 3 async messages from `sluiceway.churn.a\\x06\\x163`; for
  each it writes kombu's reservation (`unacked[tag] = [message, "", queue]`,
  `unacked_index[tag] = 0`) and `held:w[tag] = <that list>`.
- t=1..9 `RENEW` moves w's lease to now + 10 s and each held tag's reserve
  time to now, so neither kombu's visibility-timeout restore nor the
  reconciler's ever sees them as old, however long the batch runs.
- Healthy: `ACKNOWLEDGE` drops the 3 tags from `held:w`, `unacked` and the index.
- Killed at t=5: the lease ends at ~t=14; a sweeper's `RELEASE` (≤ 1 s later)
  pushes the 3 messages back to the consuming end of their list and drops w.
"""

from __future__ import annotations

# The Redis clock as epoch seconds with microseconds.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
"""

# KEYS: unacked hash, unacked index, leases, the worker's held hash, then the lists to
#   read, in order.
# ARGV: most messages to take, the time (for the index), the queue (routing key), the
#   worker id, then for each list KEYS[i] (i >= 5) the most to take from it in ARGV[i].
# Returns the messages taken, or nil when the worker's lease has ended: a worker
# declared dead must not take work under that identity (it renews first).
# The unacked value is kombu's own format, [message, exchange, routing_key],
# built by concatenation so the message's bytes are kept exactly.
RESERVE = (
    _NOW
    + """
local lease = redis.call('ZSCORE', KEYS[3], ARGV[4])
if not lease or tonumber(lease) < now then return false end
local limit = tonumber(ARGV[1])
local taken = {}
for i = 5, #KEYS do
  local want = limit - #taken
  if want <= 0 then break end
  local cap = tonumber(ARGV[i])
  if cap and cap < want then want = cap end
  local messages = redis.call('RPOP', KEYS[i], want)
  if messages then
    for _, message in ipairs(messages) do
      local tag = string.match(message, '"delivery_tag": ?"([^"]+)"')
      if tag then
        redis.call('HSET', KEYS[1], tag, '[' .. message .. ', "", "' .. ARGV[3] .. '"]')
        redis.call('ZADD', KEYS[2], ARGV[2], tag)
        redis.call('HSET', KEYS[4], tag, KEYS[i])
      end
      taken[#taken + 1] = message
    end
  end
end
return taken
"""
)

# RESERVE for a multi-model variant (core/broker/affinity.py has the rule and its example).
# KEYS: unacked hash, unacked index, leases, the worker's held hash, then the lists to
#   read, in order, then the other live workers' model reports (models:<queue>:<worker>).
# ARGV: most messages to take, the time (s, for the index), the queue, the worker id,
#   how many lists, the time in ms, steal_after_ms, the window, how many of my tags,
#   those tags, then for each list the most to take from it.
# Returns [how many were left for other workers, message, message, ...], or nil when
# the worker's lease has ended.
RESERVE_AFFINE = (
    _NOW
    + """
local lease = redis.call('ZSCORE', KEYS[3], ARGV[4])
if not lease or tonumber(lease) < now then return false end
local limit = tonumber(ARGV[1])
local lists = tonumber(ARGV[5])
local now_ms = tonumber(ARGV[6])
local steal_after = tonumber(ARGV[7])
local window = tonumber(ARGV[8])
local mine_count = tonumber(ARGV[9])
local mine = {}
for i = 10, 9 + mine_count do mine[ARGV[i]] = true end
local caps_at = 10 + mine_count
local elsewhere = {}
local function held_elsewhere(tag)
  if elsewhere[tag] == nil then
    elsewhere[tag] = false
    for k = 5 + lists, #KEYS do
      if redis.call('HEXISTS', KEYS[k], tag) == 1 then elsewhere[tag] = true break end
    end
  end
  return elsewhere[tag]
end
local taken = {0}
local left = 0
for l = 1, lists do
  local key = KEYS[4 + l]
  local want = limit - (#taken - 1)
  if want <= 0 then break end
  local cap = tonumber(ARGV[caps_at + l - 1])
  if cap and cap < want then want = cap end
  local items = redis.call('LRANGE', key, -window, -1)
  local got = 0
  for j = #items, 1, -1 do
    if got >= want then break end
    local message = items[j]
    local tag = string.match(message, '"x_model": ?"(%x+)"')
    local take = true
    if tag and not mine[tag] and held_elsewhere(tag) then
      local enqueued = tonumber(string.match(message, '"x_enqueued_ms": ?(%d+)'))
      if enqueued and now_ms - enqueued < steal_after then take = false end
    end
    if take then
      redis.call('LREM', key, -1, message)
      local dtag = string.match(message, '"delivery_tag": ?"([^"]+)"')
      if dtag then
        redis.call('HSET', KEYS[1], dtag, '[' .. message .. ', "", "' .. ARGV[3] .. '"]')
        redis.call('ZADD', KEYS[2], ARGV[2], dtag)
        redis.call('HSET', KEYS[4], dtag, key)
      end
      taken[#taken + 1] = message
      got = got + 1
    else
      left = left + 1
    end
  end
end
taken[1] = left
return taken
"""
)

# KEYS: unacked hash, unacked index, the variant's metrics hash, the worker's held hash.
# ARGV: how many tags are done, those tags, how many to let go, those tags, then
#   field/amount pairs for the metrics.
# A done tag is acknowledged only if this worker still holds it: after a sweep
# released it (the worker was presumed dead), the reservation may be another
# worker's now, and must not be removed. A let-go tag (a transient failure) stays
# reserved but no longer renewed: kombu's restore (or the reconciler's) puts it
# back after the visibility timeout, the retry delay of infrastructure failures.
# One call per batch instead of a pipeline: redis-py packs every command in
# Python, and that was a quarter of the worker's CPU at one request per batch.
# HINCRBYFLOAT keeps whole numbers whole ("6", not "6.0").
ACKNOWLEDGE = """
local done = tonumber(ARGV[1])
local acked = 0
for i = 2, done + 1 do
  if redis.call('HDEL', KEYS[4], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    acked = acked + 1
  end
end
local let_go = tonumber(ARGV[done + 2])
for i = done + 3, done + 2 + let_go do
  redis.call('HDEL', KEYS[4], ARGV[i])
end
for i = done + 3 + let_go, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1])
end
return acked
"""

# KEYS: leases, workers (info hash).
# ARGV: worker id, lease seconds, the worker's info (msgpack).
REGISTER = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
)

# KEYS: leases, workers (info hash), the worker's held hash, unacked index.
# ARGV: worker id, lease seconds, the worker's info (msgpack), the time (for the index).
# Returns how many reservations it renewed, or -1 when the worker has no lease
# any more: a sweep released its reservations, and it must register again. A
# lease that has ended but was not swept yet is simply renewed: nobody else
# has its reservations, so the worker may keep them.
RENEW = (
    _NOW
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local tags = redis.call('HKEYS', KEYS[3])
for _, tag in ipairs(tags) do
  redis.call('ZADD', KEYS[4], 'XX', ARGV[4], tag)
end
return #tags
"""
)

# KEYS: leases. ARGV: most ids to return.
# The workers whose lease has ended, by the Redis clock, oldest first.
EXPIRED = (
    _NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[1]))
"""
)

# KEYS: leases, workers (info hash).
# Returns [id, info, id, info, ...] of the workers whose lease has not ended.
LIVE = (
    _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local flat = {}
if #ids == 0 then return flat end
local infos = redis.call('HMGET', KEYS[2], unpack(ids))
for i, id in ipairs(ids) do
  flat[#flat + 1] = id
  flat[#flat + 1] = infos[i] or ''
end
return flat
"""
)


def release_script(bell_depth: int) -> str:
    """RELEASE: put a dead worker's reservations back as planned, then forget the worker.

    KEYS: leases, workers (info hash), the worker's held hash, unacked hash, unacked index.
    ARGV: the worker id, then six per reservation: tag, SHA-1 of the reservation as it
    was read, kind ("queue", "reply" or "drop"), target list, payload, and for "queue"
    the bell to ring / for "reply" the reply list's TTL in seconds.

    Returns how many reservations it moved; -1 if another sweeper released the
    worker first, -2 if its lease was renewed meanwhile (it is alive: nothing
    moves), -3 if it holds a reservation the plan did not cover (the next pass
    releases it). A reservation that changed since it was read (kombu's restore
    moved it and another worker took it) is only dropped from the held hash.
    Pushed with RPUSH, to the end consumers pop from: a released message goes next.
    """
    return (
        _NOW
        + """
local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not lease then return -1 end
if tonumber(lease) >= now then return -2 end
local moved = 0
for i = 2, #ARGV, 6 do
  local tag, digest, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local target, payload, extra = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  if redis.call('HDEL', KEYS[3], tag) == 1 then
    local reservation = redis.call('HGET', KEYS[4], tag)
    if reservation and redis.sha1hex(reservation) == digest then
      redis.call('HDEL', KEYS[4], tag)
      redis.call('ZREM', KEYS[5], tag)
      if kind == 'queue' then
        redis.call('RPUSH', target, payload)
        redis.call('LPUSH', extra, 1)
        redis.call('LTRIM', extra, 0, BELL_LAST)
      elseif kind == 'reply' then
        redis.call('RPUSH', target, payload)
        redis.call('EXPIRE', target, tonumber(extra))
      end
      moved = moved + 1
    end
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return moved
""".replace("BELL_LAST", str(bell_depth - 1))
    )


# KEYS: unacked hash, unacked index, the list to put the message back on.
# ARGV: delivery tag, the reservation as it was read, the message.
# Compare-and-move: if its worker acknowledged it, or kombu restored it, since it
# was read, the reservation is gone or different and nothing happens. RPUSH puts
# it at the end consumers pop from, as kombu's own restore does: it goes next.
RESTORE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
"""

# KEYS: unacked hash. Returns [queue, count, queue, count, ...].
# Counts the reservations per routing key inside Redis, so a large hash (a
# batching worker reserves many messages, each with its payload) never crosses
# the wire. kombu writes each value with json.dumps as [message, exchange,
# routing_key], and routing keys are queue names (no quotes, no escapes), so the
# routing key is the last JSON string of the value: read it from the tail
# instead of decoding the whole message.
COUNT_RESERVED = """
local counts = {}
local cursor = "0"
repeat
  local page = redis.call("HSCAN", KEYS[1], cursor, "COUNT", 500)
  cursor = page[1]
  local items = page[2]
  for i = 2, #items, 2 do
    local queue = string.match(string.sub(items[i], -400), '"([^"]*)"%s*%]%s*$')
    if queue then counts[queue] = (counts[queue] or 0) + 1 end
  end
until cursor == "0"
local flat = {}
for queue, count in pairs(counts) do
  flat[#flat + 1] = queue
  flat[#flat + 1] = count
end
return flat
"""
