-- scopes.lua - scopes sender, sender_domain, global and client, several
-- rules at once, count = messages. Run by scopes.sh (three milters: sock,
-- sock_client with prefix "c:", sock_messages with prefix "m:").
dofile(srcdir .. "/tests/milter/mtlib.lua")

local function keys(pattern)
	local l = {}
	for k in T.redis_scan(pattern):gmatch("[^\n]+") do
		table.insert(l, k)
	end
	return l
end

-- milter "rules": per-sender 10, per-domain (sender_domain) 15, fleet (global) 18
local conn = T.open({ label = "rules" })

T.is(T.mail(conn, "a@example.com"), "continue", "a@example.com: MAIL FROM")
local r = T.rcpts(conn, T.addrs("gmail.com", 11, 1, "a"), "SCOPE01")
T.is(T.count(r, "continue"), 10, "a@example.com: 10 continue")
T.is(r[11], "replycode", "a@example.com: 11th refused")
T.finish_message(conn, "SCOPE01", "a@example.com")
T.log_has({ "action=tempfail rcpt=a11@gmail.com network=google rule=per-sender" },
    "a@example.com: refused by rule per-sender")

T.is(T.mail(conn, "b@EXAMPLE.com"), "continue", "b@example.com: MAIL FROM")
r = T.rcpts(conn, T.addrs("gmail.com", 6, 1, "b"), "SCOPE02")
T.is(T.count(r, "continue"), 5, "b@example.com: 5 continue (15 for the domain)")
T.is(r[6], "replycode", "b@example.com: 6th refused")
T.finish_message(conn, "SCOPE02", "b@example.com")
T.log_has({ "action=tempfail rcpt=b6@gmail.com network=google rule=per-domain", "used=15/15" },
    "b@example.com: refused by rule per-domain (sender_domain)")
T.is(T.zcard(T.wkey("google", "example.com", "per-domain")), 15,
    "per-domain window of example.com holds 15")
T.is(T.zcard(T.wkey("google", "b@example.com")), 5,
    "b@example.com's per-sender window holds 5 (the refused 6th counted nowhere)")

T.is(T.mail(conn, "c@other.example"), "continue", "c@other.example: MAIL FROM")
r = T.rcpts(conn, T.addrs("gmail.com", 4, 1, "c"), "SCOPE03")
T.is(T.count(r, "continue"), 3, "c@other.example: 3 continue (18 for the fleet)")
T.is(r[4], "replycode", "c@other.example: 4th refused")
T.is(T.rcpt(conn, "c1@yahoo.com", "SCOPE03"), "continue",
    "c@other.example: yahoo.com is another network for the global rule")
T.finish_message(conn, "SCOPE03", "c@other.example")
T.log_has({ "action=tempfail rcpt=c4@gmail.com network=google rule=fleet", "used=18/18" },
    "c@other.example: refused by rule fleet (global)")
local g = keys("obm:{google}:w:fleet*")
T.is(#g, 1, "one global window for google")
if g[1] then
	T.is(T.zcard(g[1]), 18, "the global window holds 18")
end
T.is(T.zcard(T.wkey("google", "other.example", "per-domain")), 3,
    "per-domain window of other.example holds 3")
mt.disconnect(conn)

-- milter "client": scope client, burst 4, whatever the sender
sock = sock_client
conn = T.open({ ip = "127.0.0.9", label = "client 127.0.0.9" })
T.is(T.mail(conn, "d1@example.com"), "continue", "client: MAIL FROM d1")
T.all(T.rcpts(conn, T.addrs("gmail.com", 2, 1, "d")), "continue", "client: 2 from d1 continue")
T.finish_message(conn, nil, "client d1")
T.is(T.mail(conn, "d2@example.net"), "continue", "client: MAIL FROM d2")
r = T.rcpts(conn, T.addrs("gmail.com", 3, 3, "d"))
T.is(T.count(r, "continue"), 2, "client: 2 more from another sender continue")
T.is(r[3], "replycode", "client: the 5th from the same client address is refused")
T.finish_message(conn, nil, "client d2")
mt.disconnect(conn)
T.is(T.zcard("c:{google}:w:per-client:127.0.0.9"), 4,
    "client window c:{google}:w:per-client:127.0.0.9 holds 4 (prefix c:)")
conn = T.open({ ip = "127.0.0.10", label = "client 127.0.0.10" })
T.is(T.mail(conn, "d1@example.com"), "continue", "other client: MAIL FROM")
T.is(T.rcpt(conn, "d9@gmail.com"), "continue", "other client address: not limited by the first")
T.finish_message(conn, nil, "other client")
mt.disconnect(conn)

-- milter "messages": count = messages, burst 3 per sender and network
sock = sock_messages
conn = T.open({ label = "messages" })
for m = 1, 3 do
	T.is(T.mail(conn, "e@example.com"), "continue", "messages: MAIL FROM " .. m)
	T.all(T.rcpts(conn, T.addrs("gmail.com", 5, m * 10, "e")), "continue",
	    "messages: message " .. m .. " with 5 gmail.com recipients continues")
	T.finish_message(conn, nil, "messages " .. m)
end
T.is(T.zcard("m:{google}:w:per-message:e@example.com"), 3,
    "messages: 3 units for 3 messages of 5 recipients")
T.is(T.mail(conn, "e@example.com"), "continue", "messages: MAIL FROM 4")
r = T.rcpts(conn, { "e100@gmail.com", "e101@gmail.com", "e1@yahoo.com" })
T.is(r[1], "replycode", "messages: the 4th message's gmail.com recipient is refused")
T.is(r[2], "replycode", "messages: so is its second gmail.com recipient")
T.is(r[3], "continue", "messages: its yahoo.com recipient continues")
T.finish_message(conn, nil, "messages 4")
T.is(T.zcard("m:{yahoo}:w:per-message:e@example.com"), 1, "messages: 1 unit at yahoo")
mt.disconnect(conn)

T.finish()
