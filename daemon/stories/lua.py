"""The Lua scripts of the Redis story index (``daemon.stories.index``) and its record layout.

Layout (every key ``<tag>:story:…``: one hash tag, one Redis Cluster slot)
    ``r:<hour>:<block>``  string of fixed-size records (``RECORD`` bytes), ``BLOCK`` per key
                          (allocated whole when its first record is written);
                          a story id is 12 hex digits: the hour it started (24 bits) and its
                          number in that hour (24 bits), which give key and offset.
    ``n:<hour>``          the hour's story counter (starts at a random block boundary, so ids
                          are not reused after Redis lost its data within the hour).
    ``b:<slice>:<shard>`` hash: term (4 bytes) → refs (6 bytes each) of the last
                          ``bucket_size`` stories filed under it in that slice.
    ``df:<slice>``        hash: term (4 bytes) → items of the slice that had it; ``n`` → items
                          (document frequencies: ``daemon.stories.profile``).
    ``m:<slice>:<shard>`` hash: item key or canonical-link key (8 bytes) → ref.
    ``feeds``             hash: ``n:<feed>`` → feed number, ``i:<number>`` → feed, ``next``.
    ``ver``               counter: bumped by every commit that wrote, so a commit can tell
                          that nothing changed since its lookup without reading buckets again.

A record: the packed story (``PACKED_SIZE`` bytes: its sketch and profile,
``daemon.stories.cluster.Remembered``), started
(u32, seconds), revision (u16), source count (u8), a pad byte, then up to ``MAX_SOURCES``
sources (publisher number u16, first seen u32 seconds). Big-endian. Records expire ``window``
after their hour ends; terms, item keys and document frequencies ``window`` after their slice
ends, so a lookup reads ``window / slice + 1`` slices.

Both scripts start with ``ARGV = tag, now, window, slice, shards``; times are the caller's
clock (injectable); Redis TTLs only reclaim memory.

``LOOKUP`` (read only), per item: the story its item key or link already points to, else up
to ``max_candidates`` candidate stories under its probe terms (ranked by the summed weight of
the terms they were found under, then most recently filed), each with started time and
profile, and a digest of those buckets and of the candidates' revisions; once per call, the
index's version.

``COMMIT``, per item, atomically: a known item → its story; a known link → join it. Otherwise
the plan stands if the version is the one the lookup saw (no other process wrote since; the
caller holds back items that an earlier item of the same batch changes: ``StoryStore.commit``);
else the digest is computed again, and a difference means ``retry`` (another process filed a
story under one of the item's keys or changed a candidate). An
empty digest forces the plan (the caller's last round). So similarity is computed in Python
between the two scripts, and two processes never start two stories where one process doing
both items in turn would have started one.
"""

from __future__ import annotations

from daemon.stories.cluster import STORY_SIZE as PACKED_SIZE

__all__ = ["BLOCK", "COMMIT", "LOOKUP", "MAX_SOURCES", "PACKED_SIZE", "RECORD", "SOURCES_LUA"]

MAX_SOURCES = 8
RECORD = PACKED_SIZE + 8 + 6 * MAX_SOURCES
BLOCK = 64

# Shared by the story scripts and daemon/publish/stream.py: a story's record and its sources.
SOURCES_LUA = f"""
local RS, SK, BLOCK, MAXS = {RECORD}, {PACKED_SIZE}, {BLOCK}, {MAX_SOURCES}
local function story_loc(tag, sid)
  local h, n = tonumber(string.sub(sid, 1, 6), 16), tonumber(string.sub(sid, 7, 12), 16)
  return tag .. ':story:r:' .. h .. ':' .. math.floor(n / BLOCK), (n % BLOCK) * RS
end
local function story_read(tag, sid)
  local k, off = story_loc(tag, sid)
  local r = redis.call('GETRANGE', k, off, off + RS - 1)
  if #r < RS then return nil end
  return r
end
local function rec_started(r) return (struct.unpack('>I4', r, SK + 1)) end
local function rec_rev(r) return (struct.unpack('>I2', r, SK + 5)) end
local function rec_count(r) return string.byte(r, SK + 7) end
local function rec_source(r, i) return struct.unpack('>I2I4', r, SK + 9 + (i - 1) * 6) end
local function story_sources(tag, r)
  local count = rec_count(r)
  local names, times = {{}}, {{}}
  if count == 0 then return names, times end
  local fields = {{}}
  for i = 1, count do
    local id, t = rec_source(r, i)
    fields[i], times[i] = 'i:' .. id, t
  end
  local got = redis.call('HMGET', tag .. ':story:feeds', unpack(fields))
  for i = 1, count do names[i] = got[i] or '?' end
  return names, times
end
"""

_PRELUDE = (
    SOURCES_LUA
    + """
local tag = ARGV[1]
local now, window, S = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local shards = tonumber(ARGV[5])
local first, last = math.floor((now - window) / S), math.floor(now / S)
local VER = tag .. ':story:ver'
local function sid_of(ref) return string.format('%06x%06x', struct.unpack('>I3I3', ref)) end
local function ref_of(sid)
  local h, n = tonumber(string.sub(sid, 1, 6), 16), tonumber(string.sub(sid, 7, 12), 16)
  return struct.pack('>I3I3', h, n)
end
local function live_record(sid)
  local r = story_read(tag, sid)
  if not r then return nil end
  local t = rec_started(r)
  if t == 0 or t + window <= now then return nil end
  return r
end
-- Terms come from the caller in one argument: per term, its shard (4 hex digits), its field
-- (4 bytes) and its weight (1 byte). As a list: {sh = {...}, fl = {...}, w = {...}}.
local bpre = {}
for s = first, last do bpre[s] = tag .. ':story:b:' .. s .. ':' end
local function band_list(blob)
  local sh, fl, w = {}, {}, {}
  for i = 1, #blob - 8, 9 do
    sh[#sh + 1] = string.sub(blob, i, i + 3)
    fl[#fl + 1] = string.sub(blob, i + 4, i + 7)
    w[#w + 1] = string.byte(blob, i + 8)
  end
  return {sh = sh, fl = fl, w = w}
end
local function mapk(s, key)
  return tag .. ':story:m:' .. s .. ':' .. ((struct.unpack('>I2', key)) % shards)
end
local function find(key)
  if key == '' then return nil end
  for s = last, first, -1 do
    local ref = redis.call('HGET', mapk(s, key), key)
    if ref then
      local sid = sid_of(ref)
      local r = live_record(sid)
      if r then return sid, r end
    end
  end
  return nil
end
local function buckets(probes, cap)
  -- per probe term, the last ``cap`` stories filed under it in the live slices, oldest first
  -- (as one bucket of the in-memory index); parts: every value read (for the digest)
  local parts, found = {}, {}
  local sh, fl = probes.sh, probes.fl
  for j = 1, #fl do
    local kept = {}
    for s = last, first, -1 do
      local v = redis.call('HGET', bpre[s] .. sh[j], fl[j])
      parts[#parts + 1] = v or ''
      if v then
        for i = #v - 5, 1, -6 do
          if #kept < cap then kept[#kept + 1] = string.sub(v, i, i + 5) end
        end
      end
    end
    local ids = {}
    for i = #kept, 1, -1 do ids[#ids + 1] = kept[i] end
    found[j] = ids
  end
  return parts, found
end
local function revs_of(cands)
  local revs = {}
  for i = 1, #cands do
    local r = story_read(tag, cands[i])
    revs[i] = r and tostring(rec_rev(r)) or '-'
  end
  return revs
end
local function digest(parts, revs)
  return redis.sha1hex(table.concat(parts, '|') .. '#' .. table.concat(revs, '|'))
end
local function slice_ttl() return math.ceil((last + 1) * S + window - now) + 60 end
local function sources_text(r)
  local names, times = story_sources(tag, r)
  local lines = {}
  for i = 1, #names do lines[i] = names[i] .. '\\t' .. times[i] .. '\\n' end
  return table.concat(lines)
end
"""
)

LOOKUP = (
    _PRELUDE
    + """
local maxc, n, cap = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local pos, out = 9, {}
for _ = 1, n do
  local key, link, probes = ARGV[pos], ARGV[pos + 1], band_list(ARGV[pos + 2])
  pos = pos + 3
  local known, kr = find(key)
  local linked = nil
  if not known then linked = find(link) end
  if known then
    out[#out + 1] = {'known', known, rec_started(kr), sources_text(kr)}
  elseif linked then
    out[#out + 1] = {'link', linked}
  else
    local parts, found = buckets(probes, cap)
    -- rank (as daemon.stories.cluster.rank_candidates): the summed weight of the terms a
    -- story was found under, then filed most recently (its last position in a bucket), then
    -- its id; one number per story, so the sort needs no Lua comparator
    local score, recent, order = {}, {}, {}
    for j, bucket in ipairs(found) do
      for pos, ref in ipairs(bucket) do
        if not score[ref] then score[ref] = 0; recent[ref] = 0; order[#order + 1] = ref end
        score[ref] = score[ref] + probes.w[j]
        if pos > recent[ref] then recent[ref] = pos end
      end
    end
    table.sort(order, function(a, b)
      if score[a] ~= score[b] then return score[a] > score[b] end
      if recent[a] ~= recent[b] then return recent[a] > recent[b] end
      return a < b
    end)
    local cands, revs, res = {}, {}, {'cand', ''}
    for _, ref in ipairs(order) do
      if #cands >= maxc then break end
      local sid = sid_of(ref)
      local r = live_record(sid)
      if r then
        cands[#cands + 1] = sid
        revs[#revs + 1] = tostring(rec_rev(r))
        res[#res + 1] = sid; res[#res + 1] = rec_started(r); res[#res + 1] = string.sub(r, 1, SK)
      end
    end
    res[2] = digest(parts, revs)
    out[#out + 1] = res
  end
end
return {redis.call('GET', VER) or '0', out}
"""
)

COMMIT = (
    _PRELUDE
    + """
local max_sources, bucket_size = tonumber(ARGV[6]), tonumber(ARGV[7])
local seen_ver, seed, n = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local clean = (redis.call('GET', VER) or '0') == seen_ver
local dirty = false
local FEEDS = tag .. ':story:feeds'
local function feed_id(feed)
  local id = redis.call('HGET', FEEDS, 'n:' .. feed)
  if not id then
    id = redis.call('HINCRBY', FEEDS, 'next', 1)
    if id > 65535 then return nil end
    redis.call('HSET', FEEDS, 'n:' .. feed, id, 'i:' .. id, feed)
  end
  redis.call('EXPIRE', FEEDS, math.ceil(window + S) + 3660)
  return tonumber(id)
end
local function index(sid, bands)
  -- file the story under each of its terms (a bucket keeps its last bucket_size stories)
  local sh, fl = bands.sh, bands.fl
  local ref = ref_of(sid)
  for i = 1, #fl do
    local key, field = bpre[last] .. sh[i], fl[i]
    local v = redis.call('HGET', key, field) or ''
    local present = false
    for p = 1, #v - 5, 6 do if string.sub(v, p, p + 5) == ref then present = true end end
    if not present then
      v = v .. ref
      if #v > bucket_size * 6 then v = string.sub(v, #v - bucket_size * 6 + 1) end
      redis.call('HSET', key, field, v)
      redis.call('EXPIRE', key, slice_ttl())
      dirty = true
    end
  end
end
local DF = tag .. ':story:df:' .. last
local function count(terms)
  -- the item's terms (4 bytes each) into the current slice's document frequencies
  if terms == '' then return end
  for i = 1, #terms - 3, 4 do redis.call('HINCRBY', DF, string.sub(terms, i, i + 3), 1) end
  redis.call('HINCRBY', DF, 'n', 1)
  redis.call('EXPIRE', DF, slice_ttl())
end
local function map(sid, keys)
  local ref = ref_of(sid)
  for _, k in ipairs(keys) do
    if k ~= '' then
      local mk = mapk(last, k)
      redis.call('HSET', mk, k, ref)
      redis.call('EXPIRE', mk, slice_ttl())
      dirty = true
    end
  end
end
local function join(sid, r, feed, fp, bands, keys)
  local k, off = story_loc(tag, sid)
  local count, id = rec_count(r), feed_id(feed)
  local listed = id == nil
  for i = 1, count do
    if (rec_source(r, i)) == id then listed = true end
  end
  if not listed and count < max_sources then
    redis.call('SETRANGE', k, off + SK + 8 + count * 6, struct.pack('>I2I4', id, math.floor(now)))
    redis.call('SETRANGE', k, off + SK + 6, string.char(count + 1))
    dirty = true
  end
  if fp ~= '' then
    redis.call('SETRANGE', k, off, fp)
    redis.call('SETRANGE', k, off + SK + 4, struct.pack('>I2', (rec_rev(r) + 1) % 65536))
    dirty = true
    index(sid, bands)
  end
  map(sid, keys)
  r = story_read(tag, sid)
  return {'joined', sid, rec_started(r), sources_text(r)}
end
local function create(feed, fp, bands, keys)
  local h = math.floor(now / 3600)
  local ckey = tag .. ':story:n:' .. h
  local ttl = math.ceil((h + 1) * 3600 + window - now) + 60
  redis.call('SET', ckey, seed, 'NX', 'EX', ttl)
  local num = redis.call('INCR', ckey) % 16777216
  local sid = string.format('%06x%06x', h, num)
  local k, off = story_loc(tag, sid)
  local id, t = feed_id(feed), math.floor(now)
  local rec = fp .. struct.pack('>I4I2BB', t, 1, id and 1 or 0, 0)
  if id then rec = rec .. struct.pack('>I2I4', id, t) end
  if redis.call('EXISTS', k) == 0 then
    -- the whole block at once: growing a string record by record would leave it up to twice
    -- the size it needs (Redis grows strings greedily)
    redis.call('SETRANGE', k, BLOCK * RS - 1, '\\0')
    redis.call('EXPIRE', k, ttl)
  end
  redis.call('SETRANGE', k, off, rec)
  dirty = true
  index(sid, bands)
  map(sid, keys)
  return {'new', sid, t, id and (feed .. '\\t' .. t .. '\\n') or ''}
end
local pos, out = 11, {}
for _ = 1, n do
  local key, link, feed, action = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3]
  local sid, dg, fp = ARGV[pos + 4], ARGV[pos + 5], ARGV[pos + 6]
  local bands, probes = band_list(ARGV[pos + 7]), band_list(ARGV[pos + 8])
  local cands, cb, terms = {}, ARGV[pos + 9], ARGV[pos + 10]
  for j = 1, #cb - 11, 12 do cands[#cands + 1] = string.sub(cb, j, j + 11) end
  pos = pos + 11
  local known, kr = find(key)
  if known then
    out[#out + 1] = {'known', known, rec_started(kr), sources_text(kr)}
  else
    local linked, lr = find(link)
    local careful = dg ~= '' and not clean
    if linked then
      out[#out + 1] = join(linked, lr, feed, '', {sh = {}, fl = {}}, {key})
    elseif careful and (action == 'link'
        or dg ~= digest((buckets(probes, bucket_size)), revs_of(cands))) then
      out[#out + 1] = {'retry'}
    else
      local r = action == 'join' and live_record(sid)
      if r then
        count(terms)
        out[#out + 1] = join(sid, r, feed, fp, bands, {key, link})
      elseif action ~= 'new' and dg ~= '' then
        out[#out + 1] = {'retry'}
      else
        -- a new story; or, forced (no digest), the story to join or link vanished meanwhile
        count(terms)
        out[#out + 1] = create(feed, fp, bands, {key, link})
      end
    end
  end
end
if dirty then
  redis.call('INCR', VER)
  redis.call('EXPIRE', VER, math.ceil(window + S) + 3660)
end
return out
"""
)
