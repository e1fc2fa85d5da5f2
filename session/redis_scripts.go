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
// The scripts that change or end a session publish its invalidation on
// p.."inv" (redis_inval.go) in the same atomic step.
//
// Every script is given every key it touches in KEYS (a Cluster routes a
// script by its keys, and refuses a key the node does not serve). Delete
// and the revocations find some keys only in the data: the caller reads
// them first (see redis_keys.go), and the script checks, before it
// writes anything, that each key it would touch was declared; if the data
// changed in between it answers "retry" and the caller reads again.
//
// Times (c, l, tombstones and the thresholds passed in) are Unix
// nanoseconds as 20-digit zero-padded decimals, so that Lua compares them
// exactly as strings (Lua numbers are doubles). Whether a session is live
// is decided with the store's clock, passed in as thresholds: it is live
// while l >= now-idle and c >= now-absolute. Redis TTLs only collect the
// garbage, a little after the logical expiry.

// luaLib is the prelude shared by the scripts.
const luaLib = `
local declared = {}
for _, k in ipairs(KEYS) do declared[k] = true end
local function fields(h)
  local f = {}
  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
  return f
end
local function live(f, minLast, minCreated)
  return f.l >= minLast and f.c >= minCreated
end
-- indexKeys returns the keys of the indexes that list session f.
local function indexKeys(p, f)
  local ai = f.app .. '\0' .. f.iss
  local ks = {p .. 'sub:' .. ai .. '\0' .. f.sub, p .. 'app:' .. f.app}
  if f.sid ~= '' then ks[3] = p .. 'sid:' .. ai .. '\0' .. f.sid end
  return ks
end
-- undeclared reports whether a key of ks is not in KEYS.
local function undeclared(ks)
  for _, k in ipairs(ks) do
    if not declared[k] then return true end
  end
  return false
end
local function unindex(p, f)
  for _, k in ipairs(indexKeys(p, f)) do redis.call('ZREM', k, f.id) end
end
local function tombstone(k, at, minTomb, ttl)
  local prev = redis.call('GET', k)
  if prev and prev >= minTomb and prev > at then at = prev end
  local left = redis.call('PTTL', k)
  redis.call('SET', k, at, 'PX', math.max(left, ttl))
end
`

// scriptCreate: KEYS: the session, the sub tombstone, the sub, app and
// pairs indexes, and with a sid the sid tombstone and index (createKeys).
// ARGV: id, app, iss, sub, sid, c, l, m, t, ttl ms, min tombstone,
// created ms, cleanup ms (ids created before are expired), index ttl ms.
// Returns "ok", "taken" or "revoked".
var scriptCreate = redis.NewScript(`
local id, app, iss, sub, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', KEYS[1]) == 1 then return 'taken' end
if sid ~= '' then
  local t = redis.call('GET', KEYS[6])
  if t and t >= ARGV[11] then return 'revoked' end
end
local t = redis.call('GET', KEYS[2])
if t and t >= ARGV[11] and t >= ARGV[6] then return 'revoked' end
redis.call('HSET', KEYS[1], 'id', id, 'app', app, 'iss', iss, 'sub', sub, 'sid', sid,
  'c', ARGV[6], 'l', ARGV[7], 'm', ARGV[8], 't', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[10])
local ttl = tonumber(ARGV[14])
local function index(k)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. ARGV[13])
  redis.call('ZADD', k, ARGV[12], id)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
index(KEYS[3])
index(KEYS[4])
if sid ~= '' then index(KEYS[7]) end
redis.call('SADD', KEYS[5], app .. '\0' .. iss)
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
// seen, m, t, ttl ms, invalidation channel, invalidation message.
// Returns 1, or 0 if the session is gone.
var scriptUpdate = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'c', 'l')
if not v[1] or not v[2] then return 0 end
if v[2] < ARGV[1] or v[1] < ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'm', ARGV[4], 't', ARGV[5])
if ARGV[3] > v[2] then redis.call('HSET', KEYS[1], 'l', ARGV[3]) end
local ttl = tonumber(ARGV[6])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 1
`)

// scriptDelete: KEYS: the session and its indexes (as read before).
// ARGV: prefix, min last, min created, invalidation channel, invalidation
// message (published if the session was there). Returns the session's hash, nil if
// it is gone, or "retry" (nothing written) if its indexes are not all in
// KEYS. An expired session is removed too, and reported as gone.
var scriptDelete = redis.NewScript(luaLib + `
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
local f = fields(h)
if undeclared(indexKeys(ARGV[1], f)) then return 'retry' end
redis.call('DEL', KEYS[1])
unindex(ARGV[1], f)
redis.call('PUBLISH', ARGV[4], ARGV[5])
if not live(f, ARGV[2], ARGV[3]) then return false end
return h
`)

// scriptRevoke ends the live sessions an index lists and tombstones what
// it was revoked by. KEYS: the index, the tombstone, then every session
// the index listed and their indexes (as read before: revokeKeys). ARGV:
// prefix, sub filter (only the index's sessions of that subject; "" for
// all), at, min last, min created, min tombstone, tombstone ttl ms, "1"
// to delete the index afterwards, invalidation channel, invalidation
// message prefix (the ids of the removed sessions are appended). Returns the hashes of the removed
// sessions, or "retry" (nothing written) if a key it would touch is not
// in KEYS. Sessions of the index that are gone or expired are dropped on
// the way.
var scriptRevoke = redis.NewScript(luaLib + `
local p, sub, minLast, minCreated = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local recs = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local k = p .. 's:' .. id
  if not declared[k] then return 'retry' end
  local h = redis.call('HGETALL', k)
  if #h > 0 and undeclared(indexKeys(p, fields(h))) then return 'retry' end
  recs[#recs + 1] = {id, k, h}
end
local out, gone = {}, {}
for _, r in ipairs(recs) do
  local id, k, h = r[1], r[2], r[3]
  if #h == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    local f = fields(h)
    local alive = live(f, minLast, minCreated)
    if (sub == '' or f.sub == sub) or not alive then
      redis.call('DEL', k)
      unindex(p, f)
      gone[#gone + 1] = id
      if alive then out[#out + 1] = h end
    end
  end
end
if ARGV[8] == '1' then redis.call('DEL', KEYS[1]) end
tombstone(KEYS[2], ARGV[3], ARGV[6], tonumber(ARGV[7]))
if #gone > 0 then redis.call('PUBLISH', ARGV[9], ARGV[10] .. ' ' .. table.concat(gone, ' ')) end
return out
`)
