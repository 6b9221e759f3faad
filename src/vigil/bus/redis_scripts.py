"""The Lua scripts of the Redis Streams queue (:mod:`vigil.bus.redis_queue`).

Each runs atomically in Redis, and each is safe to run twice: redis-py retries a command whose
reply was lost on a broken connection, and the second run must not add, bury or replay again.
"""

from __future__ import annotations

# KEYS[1] stream, KEYS[2] the chunk's token; ARGV: prefix, ttl, tenant, accepted_at, token ttl,
# then (flagged event_id, payload) pairs. A flagged id is "" (no id) or "=" .. id.
# Returns {added, {indexes of duplicates}}; a second run with the same token returns the first
# run's answer and adds nothing.
PUBLISH_LUA = """
local done = redis.call('GET', KEYS[2])
if done then return cjson.decode(done) end
local stream, prefix, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
local tenant, accepted = ARGV[3], ARGV[4]
local added, dups, idx = 0, {}, 0
for i = 6, #ARGV, 2 do
  local flagged = ARGV[i]
  if flagged == '' then
    redis.call('XADD', stream, '*', 'tenant', tenant, 'accepted_at', accepted,
               'payload', ARGV[i + 1])
    added = added + 1
  else
    local eid = string.sub(flagged, 2)
    if redis.call('SET', prefix .. tenant .. ':' .. eid, '1', 'NX', 'EX', ttl) then
      redis.call('XADD', stream, '*', 'tenant', tenant, 'event_id', eid,
                 'accepted_at', accepted, 'payload', ARGV[i + 1])
      added = added + 1
    else
      dups[#dups + 1] = idx
    end
  end
  idx = idx + 1
end
redis.call('SET', KEYS[2], cjson.encode({added, dups}), 'EX', tonumber(ARGV[5]))
return {added, dups}
"""

# KEYS[1] stream, KEYS[2] dead-letter stream; ARGV: group, id, deliveries, error, consumer,
# dead_at. Moves the record and acknowledges it in one step; returns the dead letter's id, or
# false when there is nothing to move (no longer pending: acknowledged, or buried by a first run
# of this very command whose reply was lost).
BURY_LUA = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return false end
local entries = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #entries == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  return false
end
local fields = entries[1][2]
local origin = ARGV[2]
local args = {'XADD', KEYS[2], '*'}
for j = 1, #fields, 2 do
  if fields[j] == 'origin' then
    origin = fields[j + 1]
  else
    args[#args + 1] = fields[j]
    args[#args + 1] = fields[j + 1]
  end
end
for _, v in ipairs({'origin', origin, 'deliveries', ARGV[3], 'error', ARGV[4],
                    'consumer', ARGV[5], 'dead_at', ARGV[6]}) do
  args[#args + 1] = v
end
local dead_id = redis.call(unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return dead_id
"""

# KEYS[1] dead-letter stream, KEYS[2] stream, KEYS[3] replay marker; ARGV: id, tenant ('' = any),
# marker ttl. Returns the new id (again, for a retried run: the marker remembers it).
REPLAY_LUA = """
local replayed = redis.call('GET', KEYS[3])
if replayed then
  local tenant, new_id = string.match(replayed, '^(.-)|(.*)$')
  if ARGV[2] ~= '' and tenant ~= ARGV[2] then return false end
  return new_id
end
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entries == 0 then return false end
local f = {}
local raw = entries[1][2]
for j = 1, #raw, 2 do f[raw[j]] = raw[j + 1] end
if ARGV[2] ~= '' and f['tenant'] ~= ARGV[2] then return false end
local args = {'XADD', KEYS[2], '*', 'tenant', f['tenant']}
if f['event_id'] then
  args[#args + 1] = 'event_id'
  args[#args + 1] = f['event_id']
end
for _, k in ipairs({'accepted_at', 'payload', 'origin'}) do
  args[#args + 1] = k
  args[#args + 1] = f[k]
end
local new_id = redis.call(unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], f['tenant'] .. '|' .. new_id, 'EX', tonumber(ARGV[3]))
return new_id
"""
