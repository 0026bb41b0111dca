-- messages.lua - several messages on one connection: the second message
-- does not inherit the first one's recipients, sender or networks; the
-- window counts across messages; 50 more messages run on the same
-- connection. Run by messages.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

local conn = T.open()

-- message 1: a@ to 4 gmail.com
T.is(T.mail(conn, "a@example.com"), "continue", "message 1: MAIL FROM")
T.all(T.rcpts(conn, T.addrs("gmail.com", 4), "MSG0001"), "continue",
    "message 1: 4 gmail.com recipients continue")
T.finish_message(conn, "MSG0001", "message 1")

-- message 2: b@ to 1 yahoo.com
T.is(T.mail(conn, "b@example.com"), "continue", "message 2: MAIL FROM")
T.is(T.rcpt(conn, "y1@yahoo.com", "MSG0002"), "continue", "message 2: yahoo.com recipient")
T.finish_message(conn, "MSG0002", "message 2")

T.is(T.wait_zcard(T.wkey("google", "a@example.com"), 4), 4,
    "a@example.com has 4 units at google (not 8: message 2 added none)")
T.is(T.zcard(T.wkey("google", "b@example.com")), 0,
    "b@example.com has no unit at google (message 1's recipients not inherited)")
T.is(T.zcard(T.wkey("yahoo", "b@example.com")), 1, "b@example.com has 1 unit at yahoo")
T.is(T.zcard(T.wkey("yahoo", "a@example.com")), 0,
    "a@example.com has no unit at yahoo (message 2's sender not mixed up)")

local d = T.log_has({ "MSG0002: class=personal action=tag sender=b@example.com" },
    "message 2 has its own decision line")
if d then
	T.ok(d:find("rcpts=1 ", 1, true) ~= nil, "message 2's decision counts 1 recipient", d)
	T.ok(d:find("tempfailed=0", 1, true) ~= nil, "message 2's decision: nothing tempfailed", d)
	T.ok(d:find("google", 1, true) == nil, "message 2's decision has no google network", d)
end

-- message 3: a@ again: 6 more pass (10 in the window), the 7th is refused
T.is(T.mail(conn, "a@example.com"), "continue", "message 3: MAIL FROM")
T.all(T.rcpts(conn, T.addrs("gmail.com", 6, 5), "MSG0003"), "continue",
    "message 3: 6 more gmail.com recipients continue (10 in the window)")
T.is(T.rcpt(conn, "u11@gmail.com", "MSG0003"), "replycode",
    "message 3: 11th gmail.com recipient of the window refused across messages")
T.finish_message(conn, "MSG0003", "message 3")

-- message 4: c@ (fresh sender): a refusal in message 3 does not stick
T.is(T.mail(conn, "c@example.com"), "continue", "message 4: MAIL FROM")
T.is(T.rcpt(conn, "w1@gmail.com", "MSG0004"), "continue",
    "message 4: another sender's gmail.com recipient continues")
T.finish_message(conn, "MSG0004", "message 4")
d = T.log_has({ "MSG0004: class=personal action=tag sender=c@example.com" },
    "message 4 decision line")
if d then
	T.ok(d:find("rcpts=1 ", 1, true) ~= nil and d:find("tempfailed=0", 1, true) ~= nil,
	    "message 4's decision: 1 recipient, none tempfailed", d)
end

-- 50 more messages on the same connection, one recipient each
local bad = 0
for i = 1, 50 do
	local s = "bulk" .. i .. "@example.com"
	if T.mail(conn, s) ~= "continue" then
		bad = bad + 1
	end
	if T.rcpt(conn, "r" .. i .. "@yahoo.com", string.format("MANY%04d", i)) ~= "continue" then
		bad = bad + 1
	end
	T.headers(conn, nil, "many")
	T.body(conn)
	local r = T.eom(conn, string.format("MANY%04d", i))
	if r ~= "accept" and r ~= "continue" then
		bad = bad + 1
	end
end
T.is(bad, 0, "50 more messages on one connection all pass")
local n = 0
for i = 1, 50 do
	n = n + T.zcard(T.wkey("yahoo", "bulk" .. i .. "@example.com"))
end
T.is(n, 50, "each of the 50 senders has exactly 1 unit")
T.ok(T.wait_log({ "MANY0050: class=personal action=tag sender=bulk50@example.com" }) ~= nil,
    "the 50th message has its decision line")

mt.disconnect(conn)
T.finish()
