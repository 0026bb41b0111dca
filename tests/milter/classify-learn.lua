-- classify-learn.lua - relationships learned from outbound personal mail
-- and from inbound mail, and not learned when switched off; run by
-- classify-learn.sh with variant = "learn", "nolearn" or "cap"
-- (relationship_max = 3). local_domains is
-- example.com; a connection is outbound only with daemon ORIGINATING.
dofile(srcdir .. "/tests/milter/classify-lib.lua")

local DAY_MS = 86400 * 1000

-- one inbound message (not outbound: daemon smtpd, client 127.0.0.1);
-- returns the end-of-message reply
local function inbound(sender, rcpts, qid)
	local c = T.open({ label = qid .. " connect (inbound)" })
	local e, r = C.send(c, sender, rcpts, { qid = qid })
	T.all(r, "continue", qid .. ": inbound recipients continue")
	T.ok(e == "accept" or e == "continue", qid .. ": inbound message accepted", e)
	T.ok(not C.any_added(c), qid .. ": inbound mail gets no class header",
	    "added: " .. tostring(C.added(c)))
	T.ok(#T.log_lines({ qid .. ": class=" }) == 0, qid .. ": inbound mail is not classified")
	mt.disconnect(c)
	return e
end

local out = T.open({ daemon = "ORIGINATING", label = "connect (outbound)" })

-- send one outbound message on the outbound connection and check it
local function send(qid, sender, rcpts, hdr, decision, o)
	o = o or {}
	o.qid = qid
	local e = C.send(out, sender, rcpts, o)
	C.expect(out, qid, e, hdr, decision)
end

if variant == "learn" then
	local A = "alice@example.com"

	send("LRN0001", A, { "carol@partner.example" }, "personal; rcpts=1; known=0; velocity=1",
	    { class = "personal", rcpts = 1, known = 0, velocity = 1 })
	local rel = C.members(C.rel_key(A))
	T.ok(rel["carol@partner.example"], "personal mail teaches: carol is known to alice")
	local score = tonumber(T.redis("zscore", C.rel_key(A), "carol@partner.example")) or 0
	T.ok(math.abs(score - C.now_ms()) < 60000,
	    "the relationship's last-seen time is now (ms since the epoch)", "score " .. score)
	local ttl = tonumber(T.redis("pttl", C.rel_key(A))) or -2
	T.ok(ttl > 0, "the relationship key has a TTL", "pttl " .. ttl)

	send("LRN0002", A, { "carol@partner.example" }, "personal; rcpts=1; known=1; velocity=1",
	    { class = "personal", rcpts = 1, known = 1, velocity = 1 },
	    { from = "Alice <alice@example.com>" })

	send("LRN0003", A, { "dave@other.example" }, "personal; rcpts=1; known=0; velocity=2",
	    { class = "personal", known = 0, velocity = 2 })

	-- inbound: bob writes to alice (sub-address, upper case) and to an
	-- address outside local_domains
	inbound("bob@partner.example", { "Alice+lists@Example.COM", "x@elsewhere.example" },
	    "LRN0004")
	rel = C.members(C.rel_key(A))
	T.ok(rel["bob@partner.example"], "inbound mail teaches: bob is known to alice",
	    T.redis("zrange", C.rel_key(A), "0", "-1"))
	local _, n = C.members(C.rel_key("x@elsewhere.example"))
	T.is(n, 0, "inbound mail to a non-local recipient teaches nothing")
	_, n = C.members(C.rel_key("bob@partner.example"))
	T.is(n, 0, "inbound mail teaches the external sender nothing")

	-- alice replies to bob: known
	send("LRN0005", A, { "BOB@Partner.Example" }, "personal; rcpts=1; known=1; velocity=3",
	    { class = "personal", rcpts = 1, known = 1, velocity = 3 })

	-- bulk-like mail teaches nothing
	local six = C.addrs("n", 6, "gmail.com")
	send("LRN0006", A, six, nil, { class = "spam-risk", rcpts = 6, known = 0, velocity = 9 })
	rel, n = C.members(C.rel_key(A))
	T.is(n, 3, "spam-risk mail teaches nothing (alice still knows carol, dave, bob)")
	T.ok(not rel["n1@gmail.com"], "n1@gmail.com did not become known")

	-- internal recipients are left out of rcpts and always known
	send("LRN0007", A, C.addrs("colleague", 10, "example.com"),
	    "personal; rcpts=0; known=0; velocity=9",
	    { class = "personal", rcpts = 0, known = 0, velocity = 9, reasons = "-" },
	    { to = "team@example.com" })
	local internal = C.addrs("colleague", 6, "example.com")
	table.insert(internal, "bob@partner.example")
	send("LRN0008", A, internal, "personal; rcpts=1; known=1; velocity=9",
	    { class = "personal", rcpts = 1, known = 1, velocity = 9 })

	-- a relationship older than relationship_ttl (365 days) does not
	-- count; personal mail refreshes it
	C.know(A, { "old@partner.example" }, 400 * DAY_MS)
	send("LRN0009", A, { "old@partner.example" }, "personal; rcpts=1; known=0; velocity=10",
	    { class = "personal", known = 0 })
	send("LRN0010", A, { "old@partner.example" }, "personal; rcpts=1; known=1; velocity=10",
	    { class = "personal", known = 1 })
	-- one that is 300 days old still counts
	C.know(A, { "older@partner.example" }, 300 * DAY_MS)
	send("LRN0011", A, { "older@partner.example" }, "personal; rcpts=1; known=1; velocity=11",
	    { class = "personal", known = 1 })

	-- bulk with a known majority: 4 of 6 known is over min_known_ratio
	local list = C.addrs("sub", 6, "yahoo.com")
	C.know(A, { list[1], list[2], list[3], list[4] })
	send("LRN0012", A, list, nil, { class = "bulk", rcpts = 6, known = 4,
	    reasons = "rcpt-count,list-unsubscribe,no-one-click" },
	    { extra = { { "List-Unsubscribe", "<mailto:unsub@example.com>" } } })
	-- exactly at the ratio (3 of 6 = 0.5) is not below it
	list = C.addrs("half", 6, "yahoo.com")
	C.know(A, { list[1], list[2], list[3] })
	send("LRN0013", A, list, nil, { class = "bulk", known = 3 },
	    { extra = { { "List-Unsubscribe", "<mailto:unsub@example.com>" } } })
	-- one under it (2 of 6) is spam-risk
	list = C.addrs("few", 6, "yahoo.com")
	C.know(A, { list[1], list[2] })
	send("LRN0014", A, list, nil, { class = "spam-risk", known = 2,
	    reasons = "rcpt-count,list-unsubscribe,unknown-recipients,no-one-click" },
	    { extra = { { "List-Unsubscribe", "<mailto:unsub@example.com>" } } })

elseif variant == "cap" then
	local P = "capped@example.com"
	for i = 1, 5 do
		send("CAP000" .. i, P, { "c" .. i .. "@partner.example" }, nil,
		    { class = "personal", known = 0 })
		mt.sleep(0.02) -- distinct last-seen times
	end
	local rel, n = C.members(C.rel_key(P))
	T.is(n, 3, "relationship_max = 3: the sender keeps 3 relationships")
	T.ok(rel["c3@partner.example"] and rel["c4@partner.example"] and rel["c5@partner.example"],
	    "relationship_max = 3: the 3 most recent are kept, the oldest dropped",
	    T.redis("zrange", C.rel_key(P), "0", "-1"))
	-- the oldest kept one seen again becomes the newest: c4 is dropped next
	send("CAP0006", P, { "c3@partner.example" }, nil, { class = "personal", known = 1 })
	mt.sleep(0.02)
	send("CAP0007", P, { "c6@partner.example" }, nil, { class = "personal", known = 0 })
	rel, n = C.members(C.rel_key(P))
	T.ok(n == 3 and rel["c3@partner.example"] and rel["c5@partner.example"] and
	    rel["c6@partner.example"], "relationship_max = 3: refreshed c3 stays, c4 is dropped",
	    T.redis("zrange", C.rel_key(P), "0", "-1"))

else
	local E = "erin@example.com"
	send("NOL0001", E, { "frank@partner.example" }, "personal; rcpts=1; known=0; velocity=1",
	    { class = "personal", known = 0 })
	send("NOL0002", E, { "frank@partner.example" }, "personal; rcpts=1; known=0; velocity=1",
	    { class = "personal", known = 0 })
	local _, n = C.members(C.rel_key(E))
	T.is(n, 0, "learn_outbound = false: personal mail teaches nothing")
	inbound("bob@partner.example", { E }, "NOL0003")
	_, n = C.members(C.rel_key(E))
	T.is(n, 0, "learn_inbound = false: inbound mail teaches nothing")
	-- relationships from a permission list still count
	C.know(E, { "gina@partner.example" })
	send("NOL0004", E, { "gina@partner.example" }, "personal; rcpts=1; known=1; velocity=2",
	    { class = "personal", known = 1 })
end

mt.disconnect(out)
T.finish()
