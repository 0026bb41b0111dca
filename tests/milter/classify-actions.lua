-- classify-actions.lua - the action of each class at end of message; run
-- by classify-actions.sh with variant = "act" (personal tag, bulk reject,
-- spam-risk tempfail, header_detail = true), "hold" (personal accept, bulk
-- tag, spam-risk hold, the default header: class, and reasons for held and
-- bulk mail, no counts) or "nohdr" (every class tagged, header =
-- "X-Obm-Class", add_header = false).
dofile(srcdir .. "/tests/milter/classify-lib.lua")

local SR_REASONS = "rcpt-count,unknown-recipients,no-unsubscribe,no-one-click"
local BULK_REASONS = "rcpt-count,list-unsubscribe,no-one-click"
local LIST_HEADERS = { { "List-Unsubscribe", "<mailto:unsub@example.com>" } }

local conn = T.open()

if variant == "act" then
	-- spam-risk: 20 recipients nobody knows, no List-Unsubscribe -> 451
	local S = "sr-act@example.com"
	local e, r = C.send(conn, S, T.addrs("gmail.com", 20), { qid = "ACT0001" })
	T.all(r, "continue", "spam-risk: all 20 recipients continue at RCPT")
	T.is(e, "replycode", "spam-risk (tempfail): end of message answered with a reply code")
	C.reply_is(conn, "451", "4.7.1",
	    "Message classified spam-risk (" .. SR_REASONS .. "), try again later",
	    "spam-risk (tempfail): 451 4.7.1 names the class and the reasons")
	T.ok(not C.any_added(conn), "spam-risk (tempfail): no header added")
	T.ok(not C.held(conn), "spam-risk (tempfail): not held")
	C.decision_is("ACT0001", { class = "spam-risk", action = "tempfail", sender = S,
	    rcpts = 20, known = 0, velocity = 20, mode = "enforce", reasons = SR_REASONS },
	    "spam-risk (tempfail): decision line")
	T.is(T.wait_zcard(T.pkey("google", S), 0), 0, "spam-risk (tempfail): nothing left pending")
	T.is(T.zcard(T.wkey("google", S)), 0,
	    "spam-risk (tempfail): every unit given back (window empty)")
	local _, nrel = C.members(C.rel_key(S))
	T.is(nrel, 0, "spam-risk (tempfail): nothing learned")

	-- bulk: 6 known recipients, List-Unsubscribe, From aligned -> 550
	S = "bulk-act@example.com"
	local list = T.addrs("yahoo.com", 6, 0, "k")
	C.know(S, list)
	e, r = C.send(conn, S, list, { qid = "ACT0002", extra = LIST_HEADERS,
	    from = "\"News\" <" .. S .. ">" })
	T.all(r, "continue", "bulk: all 6 recipients continue at RCPT")
	T.is(e, "replycode", "bulk (reject): end of message answered with a reply code")
	C.reply_is(conn, "550", "5.7.1", "Message classified bulk (" .. BULK_REASONS .. ")",
	    "bulk (reject): 550 5.7.1 names the class and the reasons")
	T.ok(not C.any_added(conn), "bulk (reject): no header added")
	C.decision_is("ACT0002", { class = "bulk", action = "reject", sender = S, rcpts = 6,
	    known = 6, velocity = 6, tempfailed = 0, reasons = BULK_REASONS },
	    "bulk (reject): decision line")
	T.is(T.wait_zcard(T.pkey("yahoo", S), 0), 0, "bulk (reject): nothing left pending")
	T.is(T.zcard(T.wkey("yahoo", S)), 0, "bulk (reject): every unit given back (window empty)")

	-- personal: tagged, its unit committed
	S = "p-act@example.com"
	e, r = C.send(conn, S, { "friend@gmail.com" }, { qid = "ACT0003" })
	C.expect(conn, "ACT0003", e, "personal; rcpts=1; known=0; velocity=1",
	    { class = "personal", action = "tag", sender = S, client = "127.0.0.1", rcpts = 1,
	    known = 0, velocity = 1, tempfailed = 0, networks = "google:1", mode = "enforce",
	    reasons = "-" }, "personal (tag)")
	T.is(T.wait_zcard(T.wkey("google", S), 1), 1, "personal (tag): its unit is committed")
	local d = C.decision("ACT0003")
	T.ok(d ~= nil and d.line:find("^class=personal action=tag sender=" .. S:gsub("%p", "%%%0") ..
	    " client=127%.0%.0%.1 rcpts=1 known=0 velocity=1 tempfailed=0 networks=google:1 " ..
	    "mode=enforce reasons=%-$") ~= nil,
	    "personal (tag): the decision line has its fields in the documented order",
	    d and d.line)

	-- the client retries the tempfailed spam-risk message with one
	-- recipient: personal this time, tagged (whether the refused attempt
	-- counts in the velocity is left open here)
	S = "sr-act@example.com"
	e, r = C.send(conn, S, { "u1@gmail.com" }, { qid = "ACT0004" })
	C.expect(conn, "ACT0004", e, nil, { class = "personal", action = "tag", rcpts = 1,
	    known = 0 }, "retry of the tempfailed message with one recipient")
	local h = C.added(conn) or ""
	T.ok(h:find("^personal; rcpts=1; known=0; velocity=%d+$") ~= nil,
	    "retry with one recipient: tagged personal", h)

elseif variant == "nohdr" then
	C.HDR = "X-Obm-Class"
	local S = "nohdr@example.com"
	local e = C.send(conn, S, { "friend@gmail.com" }, { qid = "NOH0001",
	    extra = { { "X-Obm-Class", "bulk" }, { "X-Outbound-Class", "personal" } } })
	C.expect(conn, "NOH0001", e, false, { class = "personal", action = "tag" },
	    "add_header = false, personal")
	T.ok(not mt.eom_check(conn, MT_HDRADD) and not mt.eom_check(conn, MT_HDRINSERT),
	    "add_header = false: no header added at all")
	T.ok(C.deleted(conn, "X-Obm-Class"), "add_header = false: a submitted X-Obm-Class is removed")
	T.ok(not C.deleted(conn, "X-Outbound-Class"),
	    "header renamed: X-Outbound-Class is an ordinary header, left alone")
	e = C.send(conn, S, T.addrs("gmail.com", 20), { qid = "NOH0002" })
	C.expect(conn, "NOH0002", e, false, { class = "spam-risk", action = "tag" },
	    "add_header = false, spam-risk")

else
	-- spam-risk: held with the reasons as the hold reason, header added
	local S = "sr-hold@example.com"
	local e, r = C.send(conn, S, T.addrs("gmail.com", 20), { qid = "HLD0001" })
	T.all(r, "continue", "spam-risk: all 20 recipients continue at RCPT")
	C.expect(conn, "HLD0001", e, "spam-risk; reasons=" .. SR_REASONS,
	    { class = "spam-risk", action = "hold", sender = S, rcpts = 20, known = 0,
	    velocity = 20, mode = "enforce", reasons = SR_REASONS }, "spam-risk (hold)")
	T.ok(C.held(conn), "spam-risk (hold): the message is put on hold (smfi_quarantine)")
	T.ok(C.held(conn, "outbound-milter: spam-risk (" .. SR_REASONS .. ")"),
	    "spam-risk (hold): the hold reason is 'outbound-milter: spam-risk (" .. SR_REASONS .. ")'")
	T.is(T.wait_zcard(T.pkey("google", S), 0), 0, "spam-risk (hold): nothing left pending")
	local _, nrel = C.members(C.rel_key(S))
	T.is(nrel, 0, "spam-risk (hold): nothing learned")

	-- bulk: tagged, not held
	S = "bulk-hold@example.com"
	local list = T.addrs("yahoo.com", 6, 0, "k")
	C.know(S, list)
	e, r = C.send(conn, S, list, { qid = "HLD0002", extra = LIST_HEADERS })
	C.expect(conn, "HLD0002", e, "bulk; reasons=" .. BULK_REASONS,
	    { class = "bulk", action = "tag", rcpts = 6, known = 6, reasons = BULK_REASONS },
	    "bulk (tag)")
	T.ok(not C.held(conn), "bulk (tag): not held")

	-- personal with action accept: no header added, but a submitted
	-- class header is removed all the same
	S = "p-hold@example.com"
	e, r = C.send(conn, S, { "friend@gmail.com" }, { qid = "HLD0003",
	    extra = { { C.HDR, "bulk; forged=yes" } } })
	C.expect(conn, "HLD0003", e, false, { class = "personal", action = "accept",
	    reasons = "-" }, "personal (accept)")
	T.ok(not C.held(conn), "personal (accept): not held")
	T.ok(C.deleted(conn), "personal (accept): the submitted " .. C.HDR .. " header is removed")
	T.is(T.wait_zcard(T.wkey("google", S), 1), 1, "personal (accept): its unit is committed")

	-- a blocked sender (outboundctl block: a key in Redis) is spam-risk
	-- whatever else holds
	S = "blocked@example.com"
	T.redis("set", C.block_key(S), "compromised account")
	e, r = C.send(conn, S, { "friend@gmail.com" }, { qid = "HLD0004" })
	C.expect(conn, "HLD0004", e, "spam-risk; reasons=blocked",
	    { class = "spam-risk", action = "hold", sender = S, reasons = "blocked" },
	    "blocked sender")
	T.ok(C.held(conn, "outbound-milter: spam-risk (blocked)"),
	    "blocked sender: held with reason 'outbound-milter: spam-risk (blocked)'")
	-- bulk mail that would pass: the block comes after the bulk triggers
	list = T.addrs("yahoo.com", 6, 0, "b")
	C.know(S, list)
	e, r = C.send(conn, S, list, { qid = "HLD0005", extra = LIST_HEADERS })
	C.expect(conn, "HLD0005", e, nil, { class = "spam-risk", action = "hold",
	    reasons = "rcpt-count,list-unsubscribe,blocked,no-one-click" }, "blocked sender, bulk mail")
	T.ok(C.held(conn), "blocked sender, bulk mail: held")
	-- a blocked authenticated user, whatever the envelope sender
	T.redis("set", C.block_key("mallory@example.com"), "spam run")
	e, r = C.send(conn, "list@example.com", { "friend@gmail.com" }, { qid = "HLD0006",
	    auth = "mallory@example.com" })
	C.expect(conn, "HLD0006", e, nil, { class = "spam-risk", action = "hold",
	    reasons = "blocked" }, "blocked authenticated user")
	T.ok(C.held(conn), "blocked authenticated user: held")
	-- the same user cannot escape its block with the null sender
	e, r = C.send(conn, "", { "friend2@gmail.com" }, { qid = "HLD0008",
	    auth = "mallory@example.com" })
	C.expect(conn, "HLD0008", e, "spam-risk; reasons=blocked", { class = "spam-risk",
	    action = "hold", sender = "mallory@example.com", reasons = "blocked" },
	    "blocked authenticated user sending as <>")
	T.ok(C.held(conn), "blocked authenticated user sending as <>: held")
	-- nor by borrowing an envelope sender: a block on the envelope address applies
	T.redis("set", C.block_key("shared@example.com"), "leaked list")
	e, r = C.send(conn, "shared@example.com", { "friend3@gmail.com" }, { qid = "HLD0009",
	    auth = "innocent@example.com" })
	C.expect(conn, "HLD0009", e, nil, { class = "spam-risk", action = "hold",
	    sender = "innocent@example.com", reasons = "blocked" },
	    "blocked envelope sender used by another user")
	-- unblocked: personal again (blocked mail taught nothing)
	T.redis("del", C.block_key(S))
	e, r = C.send(conn, S, { "friend@gmail.com" }, { qid = "HLD0007" })
	C.expect(conn, "HLD0007", e, false, { class = "personal", action = "accept", known = 0,
	    reasons = "-" }, "unblocked sender")
	T.ok(not C.held(conn), "unblocked sender: not held")
end

mt.disconnect(conn)
T.finish()
