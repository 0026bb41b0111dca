--[[
reserve.lua - check and admit, in one atomic step, the rate-limit units of
one recipient: one unit per rule, all of one network, so every key carries
the network's hash tag and the script is valid on Redis Cluster.

Per unit there are two sorted sets:
  w  PREFIX{NET}:w:RULE:SCOPE  admitted units, score = admission time (ms)
  p  PREFIX{NET}:p:RULE:SCOPE  units not yet committed, score = expiry (ms)
A unit that is still in p when its expiry passes was abandoned (the milter
died or lost the message): it is removed from both sets and stops counting.
A message that was only slow is not lost by that: its commit (store.c)
removes the unit from p and adds it back to w at the admission time this
script returned.

KEYS[2i-1], KEYS[2i]    w and p of unit i (i = 1 .. n)
ARGV[1]                 now in ms, or 0 for the server clock
ARGV[2]                 reservation TTL in ms
ARGV[4i-1 .. 4i+2]      member, hourly, burst, burst window (ms) of unit i

Refusals are not counted here: the milter counts them with the other
counters of the transaction (doc/REDIS.md).

Windows are (now - length, now]; hourly is checked before burst; a limit
of 0 refuses everything (milter/ratelimit.c does the same arithmetic).
Returns the admission time (ms, the clock used above: ARGV[1] or the
server's) when every unit fits and has been admitted as pending, or
{i, 'hourly'|'burst', used, limit, retry_ms} for the first unit that does
not fit, in which case nothing at all was admitted.
]]

-- Redis before 5 needs this to allow writes after TIME; later ones ignore it
if redis.replicate_commands then
	redis.replicate_commands()
end

local HOUR = 3600000
local PENDING_GRACE = 60000       -- p outlives its newest expiry by this
local CHUNK = 256                 -- members removed per ZREM

-- integral ms as an exact decimal string (no exponent, no rounding)
local function ms(x)
	return string.format('%.0f', x)
end

local n = #KEYS / 2
if n < 1 or n ~= math.floor(n) or #ARGV ~= 2 + 4 * n then
	return redis.error_reply('reserve: bad number of keys or arguments')
end

local now = tonumber(ARGV[1])
if not now or now <= 0 then
	local t = redis.call('TIME')
	now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[2])

-- forget the reservations of (w, p) that expired unconfirmed
local function expire_pending(w, p)
	while true do
		local gone = redis.call('ZRANGEBYSCORE', p, '-inf', ms(now), 'LIMIT', 0, CHUNK)
		if #gone == 0 then
			return
		end
		redis.call('ZREM', w, unpack(gone))
		redis.call('ZREM', p, unpack(gone))
		if #gone < CHUNK then
			return
		end
	end
end

-- set a TTL of at least want ms (never shorten one that is longer)
local function extend(key, want)
	if redis.call('PTTL', key) < want then
		redis.call('PEXPIRE', key, want)
	end
end

-- Check every unit first. added[w] counts the units of this same call that
-- go to window w (two units on one window must both fit).
local added = {}
for i = 1, n do
	local w, p = KEYS[2 * i - 1], KEYS[2 * i]
	local a = 4 * i - 1
	local hourly = tonumber(ARGV[a + 1])
	local burst = tonumber(ARGV[a + 2])
	local bw = tonumber(ARGV[a + 3])

	expire_pending(w, p)
	redis.call('ZREMRANGEBYSCORE', w, '-inf', ms(now - HOUR))

	local extra = added[w] or 0
	local which, used, limit, len
	used = redis.call('ZCARD', w) + extra
	if used >= hourly then
		which, limit, len = 'hourly', hourly, HOUR
	else
		used = redis.call('ZCOUNT', w, '(' .. ms(now - bw), '+inf') + extra
		if used >= burst then
			which, limit, len = 'burst', burst, bw
		end
	end

	if which then
		-- one unit leaves the window when its oldest one ages out of it
		local retry = len
		local oldest
		local first = redis.call('ZRANGEBYSCORE', w, '(' .. ms(now - len), '+inf',
			'WITHSCORES', 'LIMIT', 0, 1)
		if #first == 2 then
			oldest = tonumber(first[2])
		end
		if extra > 0 and (oldest == nil or now < oldest) then
			oldest = now
		end
		if oldest then
			retry = oldest + len - now
		end
		return {i, which, used, limit, retry}
	end
	added[w] = extra + 1
end

-- Every unit fits: admit them all, pending until commit or release.
for i = 1, n do
	local w, p = KEYS[2 * i - 1], KEYS[2 * i]
	local member = ARGV[4 * i - 1]

	redis.call('ZADD', w, ms(now), member)
	redis.call('ZADD', p, ms(now + ttl), member)
	extend(w, HOUR + ttl)
	extend(p, ttl + PENDING_GRACE)
end
return now
