-- classify-headers.lua - From alignment, list and precedence headers,
-- bulk-sender advice and forged class headers (every class tagged). Run
-- by classify-headers.sh.
dofile(srcdir .. "/tests/milter/classify-lib.lua")

local conn = T.open()
local LU = { "List-Unsubscribe", "<mailto:unsub@example.com>" }
local n = 0

-- one message from SENDER to RCPTS (made known to SENDER first unless
-- o.unknown); checks the decision fields and returns the header added
local function send(sender, rcpts, decision, o, label)
	o = o or {}
	n = n + 1
	o.qid = string.format("HDR%04d", n)
	if not o.unknown then
		C.know(o.rel or sender, rcpts)
	end
	local e = C.send(conn, sender, rcpts, o)
	C.expect(conn, o.qid, e, nil, decision, label)
	return C.added(conn)
end

local six = function(p)
	return C.addrs(p, 6, "yahoo.com")
end

-- From alignment on bulk-like mail (6 known recipients, List-Unsubscribe)
local BULK = "rcpt-count,list-unsubscribe,no-one-click"
local MISMATCH = "rcpt-count,list-unsubscribe,from-mismatch,no-one-click"
send("news@example.com", six("a"), { class = "bulk", reasons = BULK },
    { from = "\"Example News\" <news@example.com>", extra = { LU } }, "From aligned")
send("news@example.com", six("b"), { class = "spam-risk", reasons = MISMATCH },
    { from = "\"Example News\" <news@other.example>", extra = { LU } }, "From in another domain")
send("bounce@mail.example.com", six("c"), { class = "bulk", reasons = BULK },
    { from = "news@example.com", extra = { LU } },
    "From in the organisational domain of a sub-domain sender")
send("news@example.co.uk", six("d"), { class = "spam-risk", reasons = MISMATCH },
    { from = "news@other.co.uk", extra = { LU } },
    "From sharing only the public suffix co.uk")
send("news@example.com", six("e"), { class = "bulk", reasons = BULK },
    { from = "\"Doe, John (Sales)\" (the boss) <JOHN@Example.COM>", extra = { LU } },
    "From with a quoted display name, a comment and upper case")
send("news@example.com", six("f"), { class = "bulk", reasons = BULK },
    { from = "=?UTF-8?Q?Caf=C3=A9_News?= <news@example.com>", extra = { LU } },
    "From with an RFC 2047 display name")
send("news@example.com", six("g"), { class = "spam-risk", reasons = MISMATCH },
    { from = "a@example.com, \"B\" <b@evil.example>", extra = { LU } },
    "From with two mailboxes, one foreign")
send("news@example.com", six("h"), { class = "bulk", reasons = BULK },
    { from = "a@example.com,\r\n\t\"B\" <b@example.com>", extra = { LU } },
    "From with two aligned mailboxes, folded")
send("news@example.com", six("i"), { class = "spam-risk", reasons = MISMATCH },
    { from = "undisclosed garbage <<<", extra = { LU } }, "From that does not parse")
send("bounces@esp.example", six("j"), { class = "bulk", reasons = BULK },
    { auth = "alice@corp.example", from = "Alice <alice@corp.example>", extra = { LU } },
    "From aligned with the authenticated user, not the envelope sender")

-- list and precedence headers make a one-recipient message bulk-like
local one = { "friend@gmail.com" }
send("p@example.com", one, { class = "personal", reasons = "-" }, { unknown = true },
    "one unknown recipient, no list header")
send("p1@example.com", one,
    { class = "spam-risk", reasons = "precedence,unknown-recipients,no-unsubscribe,no-one-click" },
    { unknown = true, extra = { { "Precedence", "bulk" } } }, "Precedence: bulk")
send("p2@example.com", one, { class = "spam-risk", reasons = "precedence,no-unsubscribe,no-one-click" },
    { extra = { { "Precedence", "list" } } }, "Precedence: list, known recipient")
send("p3@example.com", one, { class = "spam-risk", reasons = "precedence,no-unsubscribe,no-one-click" },
    { extra = { { "Precedence", " JUNK " } } }, "Precedence: junk")
send("p4@example.com", one, { class = "personal", reasons = "-" },
    { extra = { { "Precedence", "first-class" } } }, "Precedence: first-class is not bulk")
send("l1@example.com", one, { class = "spam-risk", reasons = "list-id,no-unsubscribe,no-one-click" },
    { extra = { { "List-Id", "Example news <news.example.com>" } } }, "List-Id")
send("l2@example.com", one, { class = "bulk", reasons = "list-id,list-unsubscribe,no-one-click" },
    { extra = { { "List-Id", "<news.example.com>" }, LU } }, "List-Id and List-Unsubscribe")
send("l3@example.com", one, { class = "bulk", reasons = "list-unsubscribe" },
    { extra = { LU, { "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" } } },
    "List-Unsubscribe with one-click")
send("l4@example.com", one, { class = "bulk", reasons = "list-unsubscribe,no-message-id,no-date" },
    { extra = { LU, { "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" } },
    no_message_id = true, no_date = true }, "bulk without Message-ID and Date")
send("l5@example.com", one, { class = "personal", reasons = "-" },
    { no_message_id = true, no_date = true },
    "personal without Message-ID and Date: no advice")
send("l6@example.com", one, { class = "bulk", reasons = "list-unsubscribe,no-one-click" },
    { extra = { { "list-unsubscribe", "<https://example.com/u?x=1>" } } },
    "header names in lower case")

-- forged class headers are removed, ours is added
local hdr = send("f1@example.com", one, { class = "personal" },
    { unknown = true, extra = { { C.HDR, "personal" } } }, "forged class header")
T.ok(C.deleted(conn), "forged class header: removed")
T.is(hdr, "personal; rcpts=1; known=0; velocity=1", "forged class header: ours added")
hdr = send("f2@example.com", C.addrs("u", 20, "gmail.com"), { class = "spam-risk" },
    { unknown = true, extra = { { C.HDR, "personal; rcpts=1; known=1; velocity=1" },
    { "x-outbound-class", "personal" } } }, "two forged class headers on spam-risk mail")
T.ok(C.deleted(conn), "two forged class headers: removed")
T.is(hdr, "spam-risk; rcpts=20; known=0; velocity=20; " ..
    "reasons=rcpt-count,unknown-recipients,no-unsubscribe,no-one-click",
    "two forged class headers: ours added")
hdr = send("f3@example.com", one, { class = "personal" }, { unknown = true }, "no forged header")
T.ok(not C.deleted(conn), "no forged header: nothing removed")

-- an aborted message's headers do not leak into the next message
T.is(T.mail(conn, "ab@example.com"), "continue", "aborted message: MAIL FROM")
T.is(T.rcpt(conn, "friend@gmail.com"), "continue", "aborted message: RCPT")
T.headers(conn, C.header_list("ab@example.com", { extra = { { C.HDR, "bulk" },
    { "List-Id", "<x.example.com>" }, { "Precedence", "bulk" } } }), "aborted message")
T.must(mt.abort(conn), "abort")
hdr = send("ab@example.com", one, { class = "personal", reasons = "-" }, { unknown = true },
    "after an aborted message with list headers and a forged class header")
T.ok(not C.deleted(conn), "after an aborted message: nothing removed")
T.is(hdr, "personal; rcpts=1; known=0; velocity=1", "after an aborted message: personal")

-- exempt senders are not limited but still classified
hdr = send("exempt@example.com", C.addrs("e", 6, "gmail.com"), { class = "spam-risk",
    limited = "no", reasons = "rcpt-count,unknown-recipients,no-unsubscribe,no-one-click" },
    { unknown = true }, "exempt sender")
local d = C.decision(string.format("HDR%04d", n))
T.ok(d ~= nil and d.line:find(" limited=no$") ~= nil, "exempt sender: decision line ends with limited=no",
    d and d.line)

-- a bounce (null sender) to one recipient: personal, counted in the
-- velocity of its identity (the client address), teaches nothing
n = n + 1
local qid = string.format("HDR%04d", n)
local e = C.send(conn, "", { "someone@gmail.com" }, { qid = qid,
    from = "Mail Delivery System <MAILER-DAEMON@example.com>" })
C.expect(conn, qid, e, nil, { class = "personal", rcpts = 1 }, "bounce")
T.is(#T.redis_scan("obm:{s:}*"), 0, "bounce: no key for an empty sender")
T.is(T.zcard("obm:{s:127.0.0.1}:vel"), 1, "bounce: its recipient counts in the client's velocity")
T.is(T.zcard("obm:{s:127.0.0.1}:rel"), 0, "bounce: no relationship learned")

mt.disconnect(conn)
T.finish()
