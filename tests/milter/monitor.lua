-- monitor.lua - mode = monitor: 13 gmail.com recipients in one message
-- (burst 10) all continue, twice; the log says what would have happened.
-- Run by monitor.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

local S = "m@example.com"
local conn = T.open()
for m = 1, 2 do
	local qid = "MON000" .. m
	local label = "monitor message " .. m
	T.is(T.mail(conn, S), "continue", label .. ": MAIL FROM")
	local r = T.rcpts(conn, T.addrs("gmail.com", 13, 1 + (m - 1) * 13), qid)
	T.all(r, "continue", label .. ": all 13 gmail.com recipients continue")
	T.finish_message(conn, qid, label)
	T.is(T.wait_zcard(T.pkey("google", S), 0), 0, label .. ": nothing left pending")
end

T.log_has({ "MON0001: action=would-tempfail rcpt=u11@gmail.com network=google rule=per-sender",
    "limit=burst used=10/10 window=60s", "sender=m@example.com client=127.0.0.1" },
    "would-tempfail line for the 11th recipient")
T.log_has({ "MON0001: action=would-tempfail rcpt=u13@gmail.com" },
    "would-tempfail line for the 13th recipient")
T.log_has({ "MON0002: action=would-tempfail rcpt=u14@gmail.com" },
    "second message: its first recipient would have been tempfailed")
T.log_has({ "MON0001: class=spam-risk action=tag sender=m@example.com", "mode=monitor" },
    "decision line says mode=monitor")
T.log_has({ "MON0001: class=spam-risk ", " would_tempfail=3 " },
    "decision line: 3 recipients would have been tempfailed")
T.ok(#T.log_lines({ " class=", " tempfailed=" }) == 0,
    "no decision line counts tempfailed recipients in monitor mode")
T.ok(#T.log_lines({ "action=tempfail " }) == 0, "no action=tempfail line in monitor mode")

-- what a monitor is for: the units it would have refused are not admitted,
-- so the window shows the real enforceable usage
T.is(T.zcard(T.wkey("google", S)), 10, "the window holds the 10 units enforce mode would admit")

mt.disconnect(conn)
T.finish()
