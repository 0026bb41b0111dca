-- limits.lua - RCPT-level tempfail for the 11th recipient of one network
-- (burst 10 per 60 s, rule per-sender), other networks pass, a per-network
-- hourly override, and the Redis windows afterwards. Run by limits.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

local S = "a@example.com"

-- message 1: 10 gmail.com pass, the 11th and 12th are refused, yahoo.com
-- and an unconfigured network (hotmail.com, its own registrable domain)
-- pass in the same transaction
local conn = T.open()
T.is(T.mail(conn, S), "continue", "MAIL FROM continues")
local r = T.rcpts(conn, T.addrs("gmail.com", 10), "QID00001")
T.all(r, "continue", "recipients 1-10 at gmail.com continue")
T.is(T.rcpt(conn, "u11@gmail.com", "QID00001"), "replycode",
    "11th gmail.com recipient refused with a reply code (451)")
T.is(T.rcpt(conn, "y1@yahoo.com", "QID00001"), "continue",
    "yahoo.com recipient after the refusal continues")
T.is(T.rcpt(conn, "h1@hotmail.com", "QID00001"), "continue",
    "hotmail.com (unconfigured network) recipient continues")
T.is(T.rcpt(conn, "u12@gmail.com", "QID00001"), "replycode",
    "12th gmail.com recipient refused too")
T.is(T.rcpt(conn, "U1@GoogleMail.com", "QID00001"), "replycode",
    "googlemail.com recipient shares the google network and is refused")
T.finish_message(conn, "QID00001", "message 1")

T.is(T.wait_zcard(T.wkey("google", S), 10), 10, "google window holds 10 admitted units")
T.is(T.wait_zcard(T.pkey("google", S), 0), 0, "no google reservation left pending")
T.is(T.zcard(T.wkey("yahoo", S)), 1, "yahoo window holds 1 unit")
T.is(T.zcard(T.wkey("hotmail.com", S)), 1, "hotmail.com window holds 1 unit")

T.log_has({ "QID00001: action=tempfail rcpt=u11@gmail.com network=google rule=per-sender",
    "limit=burst used=10/10 window=60s", "sender=a@example.com client=127.0.0.1" },
    "tempfail log line names recipient, network, rule, limit, usage and window")
T.log_has({ "action=tempfail rcpt=u12@gmail.com network=google" },
    "tempfail log line for the 12th recipient")
-- 12 recipients nobody knows: spam-risk, tagged (tests/lib/milter.sh tags
-- every class)
local d = T.log_has({ "QID00001: class=spam-risk action=tag sender=a@example.com client=127.0.0.1",
    "tempfailed=3", "mode=enforce" }, "decision line at end of message")
if d then
	T.ok(d:find("rcpts=12 known=0 velocity=12 ", 1, true) ~= nil,
	    "decision line counts the 12 accepted recipients", d)
	T.ok(d:find("google:10", 1, true) ~= nil, "decision line: google:10", d)
	T.ok(d:find("yahoo:1", 1, true) ~= nil, "decision line: yahoo:1", d)
	T.ok(d:find("hotmail.com:1", 1, true) ~= nil, "decision line: hotmail.com:1", d)
end

-- message 2 on the same connection: gmail.com still full, yahoo.com has
-- an hourly override of 2 (1 used): one more passes, the next is refused
T.is(T.mail(conn, S), "continue", "message 2: MAIL FROM continues")
T.is(T.rcpt(conn, "u13@gmail.com", "QID00002"), "replycode",
    "message 2: gmail.com still over the burst")
T.is(T.rcpt(conn, "y2@yahoo.com", "QID00002"), "continue",
    "message 2: 2nd yahoo.com recipient within the hourly override")
T.is(T.rcpt(conn, "y3@yahoo.com", "QID00002"), "replycode",
    "message 2: 3rd yahoo.com recipient over the hourly override of 2")
T.finish_message(conn, "QID00002", "message 2")
T.log_has({ "QID00002: action=tempfail rcpt=y3@yahoo.com network=yahoo rule=per-sender",
    "limit=hourly used=2/2 window=3600s" }, "hourly refusal is logged with its window")
T.is(T.wait_zcard(T.wkey("yahoo", S), 2), 2, "yahoo window holds 2 units")
T.is(T.zcard(T.wkey("google", S)), 10, "google window still 10 units")

-- another sender has a window of its own
T.is(T.mail(conn, "b@example.com"), "continue", "message 3: other sender")
r = T.rcpts(conn, T.addrs("gmail.com", 10, 1, "v"), "QID00003")
T.all(r, "continue", "message 3: another sender's 10 gmail.com recipients continue")
T.is(T.rcpt(conn, "v11@gmail.com", "QID00003"), "replycode",
    "message 3: another sender's 11th is refused")
T.finish_message(conn, "QID00003", "message 3")
T.is(T.wait_zcard(T.wkey("google", "b@example.com"), 10), 10,
    "message 3: the other sender's window holds 10")

-- nothing but the rate windows of this configuration: no key without the
-- prefix, every window key hash-tagged
local keys = T.redis_scan("*")
local bad = {}
for k in keys:gmatch("[^\n]+") do
	if not k:find("^obm:") then
		table.insert(bad, k)
	end
end
T.ok(#bad == 0, "every key is under the prefix obm:", table.concat(bad, "\n"))

-- every window key has a TTL
local nottl = {}
for k in keys:gmatch("[^\n]+") do
	if k:find("^obm:{[^}]+}:[wp]:") then
		local ttl = tonumber(T.redis("ttl", k))
		if ttl == nil or ttl < 0 then
			table.insert(nottl, k .. " ttl=" .. tostring(ttl))
		end
	end
end
T.ok(#nottl == 0, "every rate window key has a TTL", table.concat(nottl, "\n"))

mt.disconnect(conn)
T.finish()
