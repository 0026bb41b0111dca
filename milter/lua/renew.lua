--[[
renew.lua - keep the reservations of transactions that are still running
pending: a unit stays in its pending set p (and so keeps counting in its
window w, reserve.lua) only until its expiry; a milter renews the expiry of
the units its open transactions hold well before it passes, so that only
the units of a milter that died expire. Members no longer in p (committed,
released, or dropped after an expiry) are left alone, and an expiry is
never brought forward.

KEYS[1]        p of one window: PREFIX{NET}:p:RULE:SCOPE
ARGV[1]        now in ms, or 0 for the server clock
ARGV[2]        reservation TTL in ms
ARGV[3 ..]     members

Returns how many of the members were still pending.
]]

if redis.replicate_commands then
	redis.replicate_commands()
end

local PENDING_GRACE = 60000 -- p outlives its newest expiry by this (reserve.lua)

local p = KEYS[1]
local now = tonumber(ARGV[1])
if not now or now <= 0 then
	local t = redis.call('TIME')
	now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[2])
local expiry = string.format('%.0f', now + ttl)

-- a later expiry only: never bring one forward
local renewed = 0
for i = 3, #ARGV do
	local cur = redis.call('ZSCORE', p, ARGV[i])
	if cur then
		renewed = renewed + 1
		if tonumber(cur) < now + ttl then
			redis.call('ZADD', p, 'XX', expiry, ARGV[i])
		end
	end
end
if renewed > 0 and redis.call('PTTL', p) < ttl + PENDING_GRACE then
	redis.call('PEXPIRE', p, ttl + PENDING_GRACE)
end
return renewed
