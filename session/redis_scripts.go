package session

import "github.com/redis/go-redis/v9"

// The RedisStore's writes are Lua scripts, so that a session, its index
// entries and the tombstones change in one atomic step: no crash between
// two writes can leave a session that revocation cannot find.
//
// Keys, with p the store's prefix ("bffgate:", or "{bffgate}:" on a
// Cluster so that every key a script touches is in one slot):
//
//	p.."s:"..id                      hash: id app iss sub sid c l m t
//	p.."sid:"..app\0iss\0sid         sorted set of ids, scored by CreatedAt (ms)
//	p.."sub:"..app\0iss\0sub         sorted set of ids, scored by CreatedAt (ms)
//	p.."app:"..app                   sorted set of ids, scored by CreatedAt (ms)
//	p.."pairs"                       set of app\0iss seen (for List by sub or sid)
//	p.."tomb:sid:"..app\0iss\0sid    revocation time
//	p.."tomb:sub:"..app\0iss\0sub    revocation time
//
// Times (c, l, tombstones and the thresholds passed in) are Unix
// nanoseconds as 20-digit zero-padded decimals, so that Lua compares them
// exactly as strings (Lua numbers are doubles). Whether a session is live
// is decided with the store's clock, passed in as thresholds: it is live
// while l >= now-idle and c >= now-absolute. Redis TTLs only collect the
// garbage, a little after the logical expiry.

// luaLib is the prelude shared by the scripts.
const luaLib = `
local function fields(h)
  local f = {}
  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
  return f
end
local function live(f, minLast, minCreated)
  return f.l >= minLast and f.c >= minCreated
end
local function unindex(p, f)
  local ai = f.app .. '\0' .. f.iss
  if f.sid ~= '' then redis.call('ZREM', p .. 'sid:' .. ai .. '\0' .. f.sid, f.id) end
  redis.call('ZREM', p .. 'sub:' .. ai .. '\0' .. f.sub, f.id)
  redis.call('ZREM', p .. 'app:' .. f.app, f.id)
end
local function extend(k, ttl)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
local function tombstone(k, at, minTomb, ttl)
  local prev = redis.call('GET', k)
  if prev and prev >= minTomb and prev > at then at = prev end
  local left = redis.call('PTTL', k)
  redis.call('SET', k, at, 'PX', math.max(left, ttl))
end
-- revoke removes the live sessions listed in index idx (only those of sub
-- if sub is not empty) and returns their hashes; it drops the ids of
-- sessions that are gone or expired on the way.
local function revoke(p, idx, sub, minLast, minCreated)
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    local k = p .. 's:' .. id
    local h = redis.call('HGETALL', k)
    if #h == 0 then
      redis.call('ZREM', idx, id)
    else
      local f = fields(h)
      local alive = live(f, minLast, minCreated)
      if (sub == '' or f.sub == sub) or not alive then
        redis.call('DEL', k)
        unindex(p, f)
        if alive then out[#out + 1] = h end
      end
    end
  end
  return out
end
`

// scriptCreate: KEYS[1] the session. ARGV: prefix, id, app, iss, sub,
// sid, c, l, m, t, ttl ms, min tombstone, created ms, cleanup ms (ids
// created before are expired), index ttl ms. Returns "ok", "taken" or
// "revoked".
var scriptCreate = redis.NewScript(luaLib + `
local p, id, app, iss, sub, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', KEYS[1]) == 1 then return 'taken' end
local ai = app .. '\0' .. iss
if sid ~= '' then
  local t = redis.call('GET', p .. 'tomb:sid:' .. ai .. '\0' .. sid)
  if t and t >= ARGV[12] then return 'revoked' end
end
local t = redis.call('GET', p .. 'tomb:sub:' .. ai .. '\0' .. sub)
if t and t >= ARGV[12] and t >= ARGV[7] then return 'revoked' end
redis.call('HSET', KEYS[1], 'id', id, 'app', app, 'iss', iss, 'sub', sub, 'sid', sid,
  'c', ARGV[7], 'l', ARGV[8], 'm', ARGV[9], 't', ARGV[10])
redis.call('PEXPIRE', KEYS[1], ARGV[11])
local ttl = tonumber(ARGV[15])
local function index(k)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. ARGV[14])
  redis.call('ZADD', k, ARGV[13], id)
  extend(k, ttl)
end
if sid ~= '' then index(p .. 'sid:' .. ai .. '\0' .. sid) end
index(p .. 'sub:' .. ai .. '\0' .. sub)
index(p .. 'app:' .. app)
redis.call('SADD', p .. 'pairs', ai)
return 'ok'
`)

// scriptTouch: KEYS[1] the session. ARGV: now, min last, min created,
// ttl ms. Returns 1, or 0 if the session is gone.
var scriptTouch = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'c', 'l')
if not v[1] or not v[2] then return 0 end
if v[2] < ARGV[2] or v[1] < ARGV[3] then return 0 end
if ARGV[1] > v[2] then
  redis.call('HSET', KEYS[1], 'l', ARGV[1])
  local ttl = tonumber(ARGV[4])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return 1
`)

// scriptUpdate: KEYS[1] the session. ARGV: min last, min created, last
// seen, m, t, ttl ms. Returns 1, or 0 if the session is gone.
var scriptUpdate = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'c', 'l')
if not v[1] or not v[2] then return 0 end
if v[2] < ARGV[1] or v[1] < ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'm', ARGV[4], 't', ARGV[5])
if ARGV[3] > v[2] then redis.call('HSET', KEYS[1], 'l', ARGV[3]) end
local ttl = tonumber(ARGV[6])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

// scriptDelete: KEYS[1] the session. ARGV: prefix, min last, min created.
// Returns the session's hash, or nil if it is gone. An expired session is
// removed too, and reported as gone.
var scriptDelete = redis.NewScript(luaLib + `
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
local f = fields(h)
redis.call('DEL', KEYS[1])
unindex(ARGV[1], f)
if not live(f, ARGV[2], ARGV[3]) then return false end
return h
`)

// scriptRevokeSID: no KEYS (they derive from the arguments). ARGV:
// prefix, app, iss, sid, sub filter, at, min last, min created, min
// tombstone, tombstone ttl ms. Returns the hashes of the removed sessions.
var scriptRevokeSID = redis.NewScript(luaLib + `
local p = ARGV[1]
local ai = ARGV[2] .. '\0' .. ARGV[3]
local out = revoke(p, p .. 'sid:' .. ai .. '\0' .. ARGV[4], ARGV[5], ARGV[7], ARGV[8])
tombstone(p .. 'tomb:sid:' .. ai .. '\0' .. ARGV[4], ARGV[6], ARGV[9], tonumber(ARGV[10]))
return out
`)

// scriptRevokeSub: no KEYS. ARGV: prefix, app, iss, sub, at, min last,
// min created, min tombstone, tombstone ttl ms. Returns the hashes of the
// removed sessions.
var scriptRevokeSub = redis.NewScript(luaLib + `
local p = ARGV[1]
local ai = ARGV[2] .. '\0' .. ARGV[3]
local idx = p .. 'sub:' .. ai .. '\0' .. ARGV[4]
local out = revoke(p, idx, '', ARGV[6], ARGV[7])
redis.call('DEL', idx)
tombstone(p .. 'tomb:sub:' .. ai .. '\0' .. ARGV[4], ARGV[5], ARGV[8], tonumber(ARGV[9]))
return out
`)
