-- direction.lua - inbound vs outbound, authentication scope, null sender
-- (limited by the user, else by the client) and exemptions (matched on the
-- identity: the user when authenticated, else the envelope sender). Configuration: outbound_networks 127.0.0.0/8,
-- outbound_daemons ORIGINATING, exempt_senders exempt@example.com and
-- @exempt.example, exempt_clients 127.0.0.2/32 and 2001:db8::/32; burst 10.
-- Run by direction.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

-- send N gmail.com recipients in one message; returns the replies
local function burst(conn, sender, n, label, o)
	T.is(T.mail(conn, sender, o), "continue", label .. ": MAIL FROM")
	local r = T.rcpts(conn, T.addrs("gmail.com", n, 1, label:gsub("%W", "")), "Q" .. label:gsub("%W", ""))
	T.finish_message(conn, nil, label)
	return r
end

local function window_keys(pattern)
	local out = T.redis_scan(pattern)
	local keys = {}
	for k in out:gmatch("[^\n]+") do
		table.insert(keys, k)
	end
	table.sort(keys)
	return keys
end

-- inbound: outside outbound_networks, plain smtpd, no authentication
local conn = T.open({ ip = "192.0.2.10", daemon = "smtpd", label = "inbound" })
local r = burst(conn, "ext@example.org", 12, "inbound")
T.all(r, "continue", "inbound: all 12 gmail.com recipients continue")
mt.disconnect(conn)
T.is(#window_keys("obm:*ext@example.org*"), 0, "inbound: no rate window for the external sender")
T.ok(T.wait_log({ "action=tempfail", "sender=ext@example.org" }, 0.2) == nil,
    "inbound: nothing logged as tempfailed")

-- IPv6 client outside the outbound networks is inbound too
conn = T.open({ ip = "2001:db9::25", daemon = "smtpd", label = "inbound IPv6" })
r = burst(conn, "ext6@example.org", 12, "inbound IPv6")
T.all(r, "continue", "inbound IPv6: all 12 gmail.com recipients continue")
mt.disconnect(conn)

-- the submission service (daemon name ORIGINATING) is outbound
conn = T.open({ ip = "192.0.2.10", daemon = "ORIGINATING", label = "ORIGINATING" })
r = burst(conn, "sub@example.com", 11, "ORIGINATING")
T.is(T.count(r, "continue"), 10, "ORIGINATING: 10 recipients continue")
T.is(r[11], "replycode", "ORIGINATING: the 11th is refused")
mt.disconnect(conn)

-- authenticated from outside the outbound networks: outbound, scoped by the
-- authenticated user whatever the envelope sender
conn = T.open({ ip = "192.0.2.11", daemon = "smtpd", label = "authenticated" })
T.is(T.mail(conn, "x@example.com", { auth = "alice" }), "continue", "authenticated: MAIL FROM 1")
T.all(T.rcpts(conn, T.addrs("gmail.com", 6, 1, "auth")), "continue",
    "authenticated: 6 recipients from x@example.com continue")
T.finish_message(conn, nil, "authenticated 1")
T.is(T.mail(conn, "y@example.net", { auth = "alice" }), "continue", "authenticated: MAIL FROM 2")
r = T.rcpts(conn, T.addrs("gmail.com", 5, 7, "auth"))
T.is(T.count(r, "continue"), 4, "authenticated: 4 more from y@example.net continue")
T.is(r[5], "replycode", "authenticated: the 11th of user alice is refused, other envelope sender")
T.finish_message(conn, nil, "authenticated 2")
mt.disconnect(conn)
local keys = window_keys("obm:{google}:w:per-sender:*")
local alice = {}
for _, k in ipairs(keys) do
	if k:find("alice", 1, true) then
		table.insert(alice, k)
	end
	T.ok(not k:find("x@example.com", 1, true) and not k:find("y@example.net", 1, true),
	    "authenticated: no window keyed by the envelope sender (" .. k .. ")")
end
T.is(#alice, 1, "authenticated: one window for the authenticated user alice")
if alice[1] then
	T.is(T.zcard(alice[1]), 10, "authenticated: alice's window holds 10 units")
end

-- the null sender is limited like anyone: unauthenticated, by the client
-- address (trusted network 127.0.0.0/8)
conn = T.open({ ip = "127.0.0.9", label = "null sender" })
r = burst(conn, "", 11, "null sender")
T.is(T.count(r, "continue"), 10, "null sender from 127.0.0.9: 10 recipients continue")
T.is(r[11], "replycode", "null sender from 127.0.0.9: the 11th is refused")
T.is(T.zcard("obm:{google}:w:per-sender:127.0.0.9"), 10,
    "null sender: the window is the client address's")
T.ok(T.wait_log({ "class=spam-risk", "sender=127.0.0.9 " }, 2) ~= nil,
    "null sender: classified from its recipients like any mail (11 unknown: spam-risk)")
T.ok(T.zcard("obm:{s:127.0.0.9}:vel") == 10, "null sender: its recipients count in its velocity")
mt.disconnect(conn)

-- the null sender of an authenticated user is limited as that user
conn = T.open({ ip = "192.0.2.12", daemon = "smtpd", label = "null sender, authenticated" })
T.is(T.mail(conn, "b@example.com", { auth = "bob" }), "continue", "bob: MAIL FROM b@example.com")
T.all(T.rcpts(conn, T.addrs("gmail.com", 6, 1, "bob")), "continue", "bob: 6 recipients continue")
T.finish_message(conn, nil, "bob 1")
T.is(T.mail(conn, "", { auth = "bob" }), "continue", "bob: MAIL FROM <>")
r = T.rcpts(conn, T.addrs("gmail.com", 5, 7, "bob"))
T.is(T.count(r, "continue"), 4, "bob: 4 more as <> continue")
T.is(r[5], "replycode", "bob: the 11th, sent as <>, is refused")
T.finish_message(conn, nil, "bob 2")
mt.disconnect(conn)
T.is(T.zcard("obm:{google}:w:per-sender:bob"), 10, "bob: one window for both envelope senders")

-- an authenticated user cannot borrow an exempt envelope sender
conn = T.open({ ip = "192.0.2.13", daemon = "smtpd", label = "borrowed exemption" })
r = burst(conn, "exempt@example.com", 11, "borrowed exemption", { auth = "mallory" })
T.is(r[11], "replycode", "user mallory as exempt@example.com: the 11th is refused")
r = burst(conn, "x@exempt.example", 11, "borrowed exempt domain", { auth = "mallory2" })
T.is(r[11], "replycode", "user mallory2 as x@exempt.example: the 11th is refused")
-- a user whose login is exempt is exempt, whatever the envelope sender
r = burst(conn, "any@example.net", 12, "exempt user", { auth = "exempt@example.com" })
T.all(r, "continue", "user exempt@example.com: all 12 continue")
mt.disconnect(conn)

conn = T.open({ label = "exempt senders" })

-- exempt sender, exact address (case-insensitive)
r = burst(conn, "Exempt@Example.COM", 12, "exempt sender")
T.all(r, "continue", "exempt sender: all 12 continue")

-- exempt sender domain
r = burst(conn, "anyone@exempt.example", 12, "exempt domain")
T.all(r, "continue", "exempt sender domain: all 12 continue")

-- a similar but not exempt sender is limited
r = burst(conn, "exempt@example.comx", 11, "not exempt")
T.is(r[11], "replycode", "sender that only looks exempt: the 11th is refused")
mt.disconnect(conn)

-- exempt client inside the outbound networks
conn = T.open({ ip = "127.0.0.2", label = "exempt client" })
r = burst(conn, "c@example.com", 12, "exempt client")
T.all(r, "continue", "exempt client 127.0.0.2: all 12 continue")
mt.disconnect(conn)

-- its neighbour is not exempt
conn = T.open({ ip = "127.0.0.3", label = "not exempt client" })
r = burst(conn, "c3@example.com", 11, "not exempt client")
T.is(r[11], "replycode", "client 127.0.0.3 (not exempt): the 11th is refused")
mt.disconnect(conn)

T.finish()
