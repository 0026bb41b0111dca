-- exempt-domain.lua - exempt_senders = {"example.com"} (bare domain) at
-- match time: exempt identities pass 4 recipients over a burst of 2 and
-- leave no window; lookalikes are limited. Run by exempt-domain.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

-- windows of the google network whose scope is SCOPE
local function windows(scope)
	local out = T.redis_scan("obm:{google}:w:*")
	local n = 0
	for k in out:gmatch("[^\n]+") do
		if k:sub(-#scope - 1) == ":" .. scope then
			n = n + 1
		end
	end
	return n
end

-- send(label, open options, MAIL FROM, mail options): 4 gmail.com
-- recipients in one message; returns the replies
local seq = 0
local function send(label, o, from, mo)
	seq = seq + 1
	local conn = T.open(o)
	T.is(T.mail(conn, from, mo), "continue", label .. ": MAIL FROM continues")
	local r = T.rcpts(conn, T.addrs("gmail.com", 4, 1, "x" .. seq .. "r"), "EXD" .. seq)
	T.finish_message(conn, "EXD" .. seq, label)
	mt.disconnect(conn)
	return r
end

local outside = { ip = "192.0.2.20", daemon = "smtpd" } -- outbound only when authenticated
local inside = {}                                         -- 127.0.0.1: outbound_networks

-- exempt: the domain itself and a subdomain, as a login or as the envelope
-- sender of unauthenticated mail from outbound_networks
local exempt = {
	{ "login carol@example.com", outside, "x@other.test", { auth = "carol@example.com" }, "carol@example.com" },
	{ "login in a subdomain", outside, "x@other.test", { auth = "dave@mail.example.com" }, "dave@mail.example.com" },
	{ "login in upper case", outside, "x@other.test", { auth = "Erin@EXAMPLE.COM" }, "Erin@EXAMPLE.COM" },
	{ "unauthenticated sender in example.com", inside, "frank@example.com", nil, "frank@example.com" },
	{ "unauthenticated sender in a subdomain", inside, "gina@a.b.example.com", nil, "gina@a.b.example.com" },
}
for _, c in ipairs(exempt) do
	local r = send(c[1], c[2], c[3], c[4])
	T.all(r, "continue", c[1] .. ": exempt, all 4 recipients continue over a burst of 2")
	T.is(windows(c[5]:lower()) + windows(c[5]), 0, c[1] .. ": no rate window for it")
end

-- limited: lookalikes, and a login outside the domain that writes an
-- example.com address into MAIL FROM
local limited = {
	{ "login in example.com.evil", outside, "x@other.test", { auth = "mallory@example.com.evil" }, "mallory@example.com.evil" },
	{ "login in notexample.com", outside, "x@other.test", { auth = "mallory@notexample.com" }, "mallory@notexample.com" },
	{ "unauthenticated sender in example.com.evil", inside, "trudy@example.com.evil", nil, "trudy@example.com.evil" },
	{ "unauthenticated sender in notexample.com", inside, "trudy@notexample.com", nil, "trudy@notexample.com" },
	{ "unauthenticated sender in example.co", inside, "trudy@example.co", nil, "trudy@example.co" },
	{ "login outside, MAIL FROM in example.com", outside, "boss@example.com", { auth = "oscar" }, "oscar" },
}
for _, c in ipairs(limited) do
	local r = send(c[1], c[2], c[3], c[4])
	T.is(r[1] .. " " .. r[2], "continue continue", c[1] .. ": first 2 recipients continue")
	T.is(r[3] .. " " .. r[4], "replycode replycode", c[1] .. ": not exempt, 3rd and 4th refused")
	T.is(T.wait_zcard(T.wkey("google", c[5]), 2), 2, c[1] .. ": its window holds 2 units")
	T.log_has({ "action=tempfail rcpt=x" .. seq .. "r3@gmail.com network=google", "sender=" .. c[5] },
	    c[1] .. ": tempfail line names it")
end

T.finish()
