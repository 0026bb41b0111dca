-- abort.lua - aborts at every stage release the reservations made at RCPT.
-- Pending units are in both the window (w) and the pending set (p) until
-- the end of the message commits them; an abort must remove them from both.
-- Run by abort.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

local S = "a@example.com"
local W = T.wkey("google", S)
local P = T.pkey("google", S)

-- reserve 3 recipients and check that they are pending
local function reserve3(conn, label, first)
	T.is(T.mail(conn, S), "continue", label .. ": MAIL FROM")
	T.all(T.rcpts(conn, T.addrs("gmail.com", 3, first)), "continue",
	    label .. ": 3 recipients continue")
	T.is(T.zcard(P), 3, label .. ": 3 reservations pending")
	T.is(T.zcard(W), 3, label .. ": 3 units counted in the window while pending")
end

local function released(label)
	T.is(T.wait_zcard(P, 0), 0, label .. ": no reservation left pending")
	T.is(T.wait_zcard(W, 0), 0, label .. ": window empty again")
end

local conn = T.open()

-- abort right after MAIL FROM: nothing reserved, nothing left
T.is(T.mail(conn, S), "continue", "abort after MAIL: MAIL FROM")
T.must(mt.abort(conn), "abort")
released("abort after MAIL")

-- abort after the recipients
reserve3(conn, "abort after RCPT", 1)
T.must(mt.abort(conn), "abort")
released("abort after RCPT")

-- abort after the headers
reserve3(conn, "abort after headers", 4)
T.is(T.headers(conn, nil, "abort after headers"), "continue", "abort after headers: EOH")
T.must(mt.abort(conn), "abort")
released("abort after headers")

-- abort after the body, before the end of message
reserve3(conn, "abort after body", 7)
T.headers(conn, nil, "abort after body")
T.is(T.body(conn), "continue", "abort after body: body continues")
T.must(mt.abort(conn), "abort")
released("abort after body")

-- a new MAIL FROM without an abort in between (an SMTP RSET that the
-- filter only learns about through the next MAIL) must not keep the
-- previous transaction's reservations either
reserve3(conn, "MAIL without abort", 10)
T.is(T.mail(conn, S), "continue", "MAIL without abort: second MAIL FROM")
released("MAIL without abort")
T.must(mt.abort(conn), "abort")

-- polite disconnect in the middle of a transaction (QUIT, no abort)
T.must(mt.disconnect(conn), "disconnect")
conn = T.open({ label = "connection 2" })
reserve3(conn, "QUIT after RCPT", 13)
T.must(mt.disconnect(conn), "disconnect")
released("QUIT after RCPT")

-- connection lost in the middle of a transaction (no abort, no QUIT)
conn = T.open({ label = "connection 3" })
reserve3(conn, "connection lost after RCPT", 16)
T.must(mt.disconnect(conn, false), "abrupt disconnect")
released("connection lost after RCPT")

-- none of that counted: the full burst of 10 passes, the 11th does not
conn = T.open({ label = "connection 4" })
T.is(T.mail(conn, S), "continue", "after the aborts: MAIL FROM")
T.all(T.rcpts(conn, T.addrs("gmail.com", 10, 100), "QIDABORT"), "continue",
    "after the aborts: 10 gmail.com recipients continue")
T.is(T.rcpt(conn, "u111@gmail.com", "QIDABORT"), "replycode",
    "after the aborts: the 11th is refused")
T.finish_message(conn, "QIDABORT", "after the aborts")
T.is(T.wait_zcard(P, 0), 0, "after the aborts: nothing pending after the end of message")
T.is(T.zcard(W), 10, "after the aborts: the window holds exactly the 10 committed units")

-- an aborted transaction after that does not touch the committed units
T.is(T.mail(conn, S), "continue", "abort with a full window: MAIL FROM")
T.is(T.rcpt(conn, "u200@gmail.com"), "replycode", "abort with a full window: refused")
T.is(T.rcpt(conn, "y1@yahoo.com"), "continue", "abort with a full window: yahoo.com continues")
T.must(mt.abort(conn), "abort")
T.is(T.wait_zcard(T.pkey("yahoo", S), 0), 0, "abort with a full window: yahoo reservation released")
T.is(T.wait_zcard(T.wkey("yahoo", S), 0), 0, "abort with a full window: yahoo window empty")
T.is(T.zcard(W), 10, "abort with a full window: the 10 committed units stay")

mt.disconnect(conn)
T.finish()
