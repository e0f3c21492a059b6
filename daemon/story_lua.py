"""The two Lua scripts of the Redis story index (``daemon.story_store``). Contains no Python logic.

Both start with ``ARGV = tag, now, window, slice, shards`` (seconds; ``now`` as the caller
wrote it, so stored times are the caller's clock, injectable in tests) and share
``_PRELUDE``. Every key they touch is ``<tag>:story:…`` (one hash tag: one Redis Cluster
slot); ``KEYS[1]`` is one of the current slice's item hashes, for routing.

``LOOKUP`` (read only), per item: the story its item key or canonical link already points to,
else the candidate stories under its probe keys (best first, at most ``max_candidates``, each
with its started time and packed sketch) and a *digest*: SHA-1 of the probe keys' buckets in
every live slice and of the candidates' revisions.

``COMMIT``, per item, atomically: if the item key is now known, that story; if its link is now
known, join that story; if the digest of the same buckets and candidates differs (another
process filed a story under one of the item's probe keys, or changed a candidate's sketch),
``retry``; otherwise join the chosen story or start one. An empty digest forces the plan (the
caller's last round): a story that vanished meanwhile is then started anew. So the similarity
is computed in Python between the two, and two processes never start two stories where one
process doing both items in turn would have started one.
"""

from __future__ import annotations

_PRELUDE = """
local tag, nowstr = ARGV[1], ARGV[2]
local now, window, S = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local shards = tonumber(ARGV[5])
local first, last = math.floor((now - window) / S), math.floor(now / S)
local function rec(sid) return tag .. ':story:' .. sid end
local function bandk(s, k) return tag .. ':story:band:' .. s .. ':' .. (tonumber(k) % shards) end
local function itemk(s, key)
  return tag .. ':story:item:' .. s .. ':' .. (tonumber(string.sub(key, 2, 3), 16) % shards)
end
local function sketch(sid)
  local p = redis.call('HMGET', rec(sid), 'f0', 'f1', 'f2')
  if p[1] and p[2] and p[3] then return p[1] .. p[2] .. p[3] end
  return nil
end
local function live(sid)
  local t = redis.call('HGET', rec(sid), 't')
  return t and tonumber(t) + window > now
end
local function find(key)
  if key == '' then return nil end
  for s = last, first, -1 do
    local sid = redis.call('HGET', itemk(s, key), key)
    if sid and live(sid) then return sid end
  end
  return nil
end
local function ids(v)
  local out = {}
  if v then for x in string.gmatch(v, '%S+') do out[#out + 1] = x end end
  return out
end
local function buckets(probes)
  local parts, found = {}, {}
  if #probes == 0 then return parts, found end
  for s = first, last do
    for _, k in ipairs(probes) do
      local v = redis.call('HGET', bandk(s, k), k)
      parts[#parts + 1] = v or ''
      if v then found[#found + 1] = ids(v) end
    end
  end
  return parts, found
end
local function digest(parts, cands)
  local all = {}
  for i = 1, #parts do all[#all + 1] = parts[i] end
  for i = 1, #cands do all[#all + 1] = redis.call('HGET', rec(cands[i]), 'rev') or '-' end
  return redis.sha1hex(table.concat(all, '|'))
end
local function slice_ttl()
  return math.ceil((last + 1) * S + window - now) + 60
end
"""

LOOKUP = (
    _PRELUDE
    + """
local maxc, n = tonumber(ARGV[6]), tonumber(ARGV[7])
local pos, out = 8, {}
for _ = 1, n do
  local key, link, np = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local probes = {}
  for j = 1, np do probes[j] = ARGV[pos + 2 + j] end
  pos = pos + 3 + np
  local known = find(key)
  local linked = (not known) and find(link) or nil
  if known then
    local r = redis.call('HMGET', rec(known), 't', 'src')
    out[#out + 1] = {'known', known, r[1], r[2]}
  elseif linked then
    out[#out + 1] = {'link', linked}
  else
    local parts, found = buckets(probes)
    local score, order = {}, {}
    for _, bucket in ipairs(found) do
      local w = 1 + 1 / #bucket
      for _, sid in ipairs(bucket) do
        if not score[sid] then score[sid] = 0; order[#order + 1] = sid end
        score[sid] = score[sid] + w
      end
    end
    local rank = {}
    for i, sid in ipairs(order) do rank[sid] = i end
    table.sort(order, function(a, b)
      if score[a] ~= score[b] then return score[a] > score[b] end
      return rank[a] < rank[b]
    end)
    local cands, res = {}, {'cand', ''}
    for _, sid in ipairs(order) do
      if #cands >= maxc then break end
      local t = redis.call('HGET', rec(sid), 't')
      local fp = t and tonumber(t) + window > now and sketch(sid)
      if fp then
        cands[#cands + 1] = sid
        res[#res + 1] = sid; res[#res + 1] = t; res[#res + 1] = fp
      end
    end
    res[2] = digest(parts, cands)
    out[#out + 1] = res
  end
end
return out
"""
)

COMMIT = (
    _PRELUDE
    + """
local max_sources, bucket_size, index_keys = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local n = tonumber(ARGV[9])
local function store_sketch(sid, fp)
  redis.call('HSET', rec(sid), 'f0', string.sub(fp, 1, 64), 'f1', string.sub(fp, 65, 128),
    'f2', string.sub(fp, 129))
end
local function index(sid, bands)
  if #bands == 0 then return end
  local fills, order = {}, {}
  for i, k in ipairs(bands) do
    local f = 0
    for s = first, last do f = f + #ids(redis.call('HGET', bandk(s, k), k)) end
    fills[i] = f; order[i] = i
  end
  table.sort(order, function(a, b)
    if fills[a] ~= fills[b] then return fills[a] < fills[b] end
    return a < b
  end)
  local chosen = {}
  for j = 1, math.min(index_keys, #order) do
    if fills[order[j]] < bucket_size then chosen[#chosen + 1] = order[j] end
  end
  if #chosen == 0 then for j = 1, math.min(2, #order) do chosen[#chosen + 1] = order[j] end end
  for _, i in ipairs(chosen) do
    local key = bandk(last, bands[i])
    local bucket, present = ids(redis.call('HGET', key, bands[i])), false
    for _, x in ipairs(bucket) do if x == sid then present = true end end
    if not present then
      bucket[#bucket + 1] = sid
      while #bucket > bucket_size do table.remove(bucket, 1) end
      redis.call('HSET', key, bands[i], table.concat(bucket, ' '))
      redis.call('EXPIRE', key, slice_ttl())
    end
  end
end
local function map(sid, keys)
  for _, k in ipairs(keys) do
    if k ~= '' then
      local ik = itemk(last, k)
      redis.call('HSET', ik, k, sid)
      redis.call('EXPIRE', ik, slice_ttl())
    end
  end
end
local function has(src, feed)
  return string.find('\\n' .. src, '\\n' .. feed .. '\\t', 1, true) ~= nil
end
local function join(sid, feed, fp, bands, keys)
  local src = redis.call('HGET', rec(sid), 'src') or ''
  local _, count = string.gsub(src, '\\n', '')
  if not has(src, feed) and count < max_sources then
    src = src .. feed .. '\\t' .. nowstr .. '\\n'
    redis.call('HSET', rec(sid), 'src', src)
  end
  if fp ~= '' then
    store_sketch(sid, fp)
    redis.call('HINCRBY', rec(sid), 'rev', 1)
    index(sid, bands)
  end
  map(sid, keys)
  return {'joined', sid, redis.call('HGET', rec(sid), 't'), src}
end
local function create(base, feed, fp, bands, keys)
  local sid, k = base, 1
  while redis.call('EXISTS', rec(sid)) == 1 do sid = base .. '-' .. k; k = k + 1 end
  local src = feed .. '\\t' .. nowstr .. '\\n'
  redis.call('HSET', rec(sid), 't', nowstr, 'rev', 1, 'src', src)
  store_sketch(sid, fp)
  redis.call('EXPIRE', rec(sid), math.ceil(window) + 60)
  index(sid, bands)
  map(sid, keys)
  return {'new', sid, nowstr, src}
end
local pos, out = 10, {}
for _ = 1, n do
  local key, link, feed, action = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3]
  local sid, base, dg, fp = ARGV[pos + 4], ARGV[pos + 5], ARGV[pos + 6], ARGV[pos + 7]
  local replace = ARGV[pos + 8] == '1'
  pos = pos + 9
  local bands, probes, cands = {}, {}, {}
  for _, list in ipairs({bands, probes, cands}) do
    local m = tonumber(ARGV[pos])
    for j = 1, m do list[j] = ARGV[pos + j] end
    pos = pos + 1 + m
  end
  local known = find(key)
  if known then
    local r = redis.call('HMGET', rec(known), 't', 'src')
    out[#out + 1] = {'known', known, r[1], r[2]}
  else
    local linked = find(link)
    if linked then
      out[#out + 1] = join(linked, feed, '', {}, {key})
    elseif dg ~= '' and (action == 'link' or dg ~= digest((buckets(probes)), cands)) then
      out[#out + 1] = {'retry'}
    elseif action == 'join' and live(sid) then
      out[#out + 1] = join(sid, feed, replace and fp or '', bands, {key, link})
    elseif action ~= 'new' and dg ~= '' then
      out[#out + 1] = {'retry'}
    else
      -- a new story; or, forced (no digest), the story to join or link vanished meanwhile
      out[#out + 1] = create(base, feed, fp, bands, {key, link})
    end
  end
end
return out
"""
)
