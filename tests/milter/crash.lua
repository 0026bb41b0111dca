-- crash.lua - one phase of crash.sh (global phase: reserve, within, after).
dofile(srcdir .. "/tests/milter/mtlib.lua")

local S = "a@example.com"
local W = T.wkey("google", S)
local P = T.pkey("google", S)

if phase == "reserve" then
	local conn = T.open()
	T.is(T.mail(conn, S), "continue", "reserve: MAIL FROM")
	T.all(T.rcpts(conn, T.addrs("gmail.com", 5)), "continue", "reserve: 5 recipients continue")
	T.is(T.zcard(P), 5, "reserve: 5 reservations pending")
	-- the milter dies with the transaction open
	os.execute("kill -KILL " .. mpid)
	mt.sleep(0.5)
	T.is(T.zcard(P), 5, "after the crash: the 5 reservations are still pending")

elseif phase == "within" then
	-- until they expire, abandoned reservations count (never over the limit)
	local conn = T.open()
	T.is(T.mail(conn, S), "continue", "within TTL: MAIL FROM")
	local r = T.rcpts(conn, T.addrs("gmail.com", 6, 10))
	T.is(T.count(r, "continue"), 5, "within TTL: 5 more recipients continue")
	T.is(r[6], "replycode", "within TTL: the 11th (5 abandoned + 5 + 1) is refused")
	T.finish_message(conn, nil, "within TTL")
	T.is(T.wait_zcard(P, 5), 5, "within TTL: only the 5 abandoned units stay pending")
	T.is(T.zcard(W), 10, "within TTL: the window counts 10")
	mt.disconnect(conn)

elseif phase == "after" then
	-- the abandoned reservations have expired: 5 committed units remain
	local conn = T.open()
	T.is(T.mail(conn, S), "continue", "after TTL: MAIL FROM")
	local r = T.rcpts(conn, T.addrs("gmail.com", 6, 20))
	T.is(T.count(r, "continue"), 5, "after TTL: 5 recipients continue again")
	T.is(r[6], "replycode", "after TTL: the 6th is refused (5 committed + 5)")
	T.finish_message(conn, nil, "after TTL")
	T.is(T.wait_zcard(P, 0), 0, "after TTL: nothing pending")
	T.is(T.zcard(W), 10, "after TTL: the window holds the 10 committed units")
	mt.disconnect(conn)

elseif phase == "hold" then
	-- keep a transaction open while the shell stops the milter
	local conn = T.open()
	T.mail(conn, "hold@example.com")
	T.rcpt(conn, "h1@gmail.com")
	print("# holding")
	io.stdout:flush()
	mt.sleep(20)
end

T.finish()
