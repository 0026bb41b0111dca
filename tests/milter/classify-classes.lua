-- classify-classes.lua - limit rules per class: per-sender counts every
-- class, bulk-only counts bulk and spam-risk; spam-risk is tempfailed.
-- Run by classify-classes.sh.
dofile(srcdir .. "/tests/milter/classify-lib.lua")

local conn = T.open()
local S = "c@example.com"

-- units of sender S at NETWORK in rule RULE: committed, pending
local function units(network, rule)
	return T.zcard(T.wkey(network, S, rule)), T.zcard(T.pkey(network, S, rule))
end

local function check(network, all, bulk, label)
	T.is(T.wait_zcard(T.pkey(network, S, "bulk-only"), 0), 0,
	    label .. ": nothing pending in rule bulk-only")
	T.is(T.wait_zcard(T.pkey(network, S), 0), 0, label .. ": nothing pending in rule per-sender")
	local w = units(network, "per-sender")
	T.is(w, all, label .. ": rule per-sender (every class) holds " .. all .. " unit(s)")
	w = units(network, "bulk-only")
	T.is(w, bulk, label .. ": rule bulk-only holds " .. bulk .. " unit(s)")
end

-- personal: 1 and then 5 recipients
local e = C.send(conn, S, { "p1@gmail.com" }, { qid = "CLS0001" })
C.expect(conn, "CLS0001", e, "personal; rcpts=1; known=0; velocity=1", { class = "personal" })
check("google", 1, 0, "personal, 1 recipient")
e = C.send(conn, S, C.addrs("q", 5, "gmail.com"), { qid = "CLS0002" })
C.expect(conn, "CLS0002", e, nil, { class = "personal", rcpts = 5 })
check("google", 6, 0, "personal, 5 recipients")

-- bulk: 6 known yahoo.com recipients with List-Unsubscribe
local list = C.addrs("k", 6, "yahoo.com")
C.know(S, list)
e = C.send(conn, S, list, { qid = "CLS0003",
    extra = { { "List-Unsubscribe", "<mailto:unsub@example.com>" } } })
C.expect(conn, "CLS0003", e, nil, { class = "bulk", rcpts = 6, known = 6 })
check("yahoo", 6, 6, "bulk, 6 recipients")

-- spam-risk, tempfailed: 6 unknown hotmail.com recipients
e = C.send(conn, S, C.addrs("h", 6, "hotmail.com"), { qid = "CLS0004" })
T.is(e, "replycode", "spam-risk: tempfailed at end of message")
C.decision_is("CLS0004", { class = "spam-risk", action = "tempfail" }, "spam-risk: decision line")
check("hotmail.com", 0, 0, "spam-risk tempfailed")
-- and the personal and bulk units stay as they were
T.is(T.zcard(T.wkey("google", S)), 6, "after the tempfail: per-sender still 6 at google")
T.is(T.zcard(T.wkey("yahoo", S, "bulk-only")), 6, "after the tempfail: bulk-only still 6 at yahoo")

mt.disconnect(conn)
T.finish()
