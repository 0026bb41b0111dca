-- classify-monitor.lua - mode = monitor (personal accept, bulk reject,
-- spam-risk hold configured): every message accepted with the header,
-- nothing held, the decision line says what would have been done. Run by
-- classify-monitor.sh.
dofile(srcdir .. "/tests/milter/classify-lib.lua")

local SR_REASONS = "rcpt-count,unknown-recipients,no-unsubscribe,no-one-click"
local conn = T.open()

-- spam-risk (hold configured): only tagged, so its header carries the class
-- alone (reasons go out for held and bulk mail; counts only with header_detail)
local S = "sr-mon@example.com"
local e, r = C.send(conn, S, T.addrs("gmail.com", 20), { qid = "MONC001" })
T.all(r, "continue", "spam-risk: all 20 recipients continue")
C.expect(conn, "MONC001", e, "spam-risk",
    { class = "spam-risk", action = "would-hold", mode = "monitor", rcpts = 20, would_tempfail = 0,
      reasons = SR_REASONS },
    "monitor, spam-risk")
T.ok(not C.held(conn), "monitor, spam-risk: not held")
T.is(T.wait_zcard(T.pkey("google", S), 0), 0, "monitor, spam-risk: nothing left pending")
local _, nrel = C.members(C.rel_key(S))
T.is(nrel, 0, "monitor, spam-risk: nothing learned")

-- bulk (reject configured): accepted and tagged
S = "bulk-mon@example.com"
local list = T.addrs("yahoo.com", 6, 0, "k")
C.know(S, list)
e, r = C.send(conn, S, list, { qid = "MONC002",
    extra = { { "List-Unsubscribe", "<https://example.com/u>, <mailto:u@example.com>" },
    { "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" } } })
C.expect(conn, "MONC002", e, "bulk; reasons=rcpt-count,list-unsubscribe",
    { class = "bulk", action = "would-reject", mode = "monitor", reasons = "rcpt-count,list-unsubscribe" },
    "monitor, bulk")

-- personal (accept configured): monitor mode always adds the header
S = "p-mon@example.com"
e, r = C.send(conn, S, { "friend@gmail.com" }, { qid = "MONC003",
    extra = { { C.HDR, "bulk; forged=yes" } } })
C.expect(conn, "MONC003", e, "personal",
    { class = "personal", action = "accept", mode = "monitor", reasons = "-" },
    "monitor, personal")
T.ok(C.deleted(conn), "monitor, personal: the submitted class header is removed")

mt.disconnect(conn)
T.finish()
