-- store-down.lua - one phase of store-down.sh, chosen by the globals
-- phase (up, down, back, stuck) and policy (accept, tempfail, both).
dofile(srcdir .. "/tests/milter/mtlib.lua")

local HDR = "X-Outbound-Class"
local UNKNOWN = "unknown; reasons=store-unavailable"

-- the value of our header added at end of message, or nil
local function added_header(conn)
	for _, idx in ipairs({ 0, 1 }) do
		local v = mt.getheader(conn, HDR, idx)
		if v ~= nil then
			return (v:gsub("^%s+", ""))
		end
	end
	return nil
end

local function one_message(conn, sender, rcpts, label)
	T.is(T.mail(conn, sender), "continue", label .. ": MAIL FROM")
	local r = T.rcpts(conn, rcpts)
	local h = T.headers(conn, nil, label)
	T.body(conn)
	local e = T.eom(conn)
	return r, e
end

local tag = phase .. "/" .. policy

if phase == "up" then
	local conn = T.open({ label = tag })
	local r, e = one_message(conn, "warm@example.com", { "w1@gmail.com" }, tag)
	T.all(r, "continue", tag .. ": recipient continues")
	T.ok(e == "accept" or e == "continue", tag .. ": message accepted", e)
	T.ok(added_header(conn) ~= UNKNOWN, tag .. ": no store-unavailable header while Redis is up")
	mt.disconnect(conn)

elseif phase == "down" then
	local conn = T.open({ label = tag })
	local t0 = T.now()
	local r, e = one_message(conn, "d@example.com", T.addrs("gmail.com", 12), tag)
	local dt = T.now() - t0
	if policy == "accept" then
		T.all(r, "continue", tag .. ": all 12 recipients continue (not limited, not refused)")
		T.ok(e == "accept" or e == "continue", tag .. ": message accepted", e)
		local added = mt.eom_check(conn, MT_HDRINSERT, HDR, UNKNOWN) or
		    mt.eom_check(conn, MT_HDRADD, HDR, UNKNOWN) or
		    mt.eom_check(conn, MT_HDRINSERT, HDR, " " .. UNKNOWN) or
		    mt.eom_check(conn, MT_HDRADD, HDR, " " .. UNKNOWN)
		T.ok(added, tag .. ": header " .. HDR .. ": " .. UNKNOWN .. " added",
		    "header value seen: " .. tostring(added_header(conn)))
		T.log_has({ "store-unavailable" }, tag .. ": the outage is logged")
	else
		T.all(r, "replycode", tag .. ": every recipient refused with a reply code (451 4.3.0)")
	end
	T.ok(dt < 5, tag .. ": the whole message took less than 5 s", "took " .. dt .. " s")
	mt.disconnect(conn)

elseif phase == "back" then
	-- reconnect (with back-off): poll until a message is counted again
	local S = "back-" .. policy .. "@example.com"
	local conn = T.open({ label = tag })
	local counted = false
	for i = 1, 60 do
		local r = one_message(conn, "probe-" .. policy .. "@example.com", { "p" .. i .. "@yahoo.com" },
		    tag .. " probe " .. i)
		if T.zcard(T.wkey("yahoo", "probe-" .. policy .. "@example.com")) > 0 then
			counted = true
			break
		end
		mt.sleep(0.25)
	end
	T.ok(counted, tag .. ": the milter uses Redis again within 15 s")
	T.is(T.mail(conn, S), "continue", tag .. ": MAIL FROM")
	local r = T.rcpts(conn, T.addrs("gmail.com", 11))
	T.is(T.count(r, "continue"), 10, tag .. ": 10 recipients continue")
	T.is(r[11], "replycode", tag .. ": the 11th is refused again")
	T.finish_message(conn, nil, tag)
	T.is(T.wait_zcard(T.wkey("google", S), 10), 10, tag .. ": 10 units in the window")
	mt.disconnect(conn)

elseif phase == "stuck" then
	local ca = T.open({ label = "stuck/accept" })
	local ct
	do
		local s = sock
		sock = sock2
		ct = T.open({ label = "stuck/tempfail" })
		sock = s
	end
	T.is(T.mail(ca, "stuck@example.com"), "continue", "stuck/accept: MAIL FROM")
	T.is(T.mail(ct, "stuck@example.com"), "continue", "stuck/tempfail: MAIL FROM")
	-- block Redis for 3 s
	local stuck = T.redis_sleep(3)
	mt.sleep(0.3)
	local t0 = T.now()
	local judged_from = t0
	local ra = T.rcpt(ca, "s1@gmail.com")
	local ta = T.now() - t0
	t0 = T.now()
	local rt = T.rcpt(ct, "s1@gmail.com")
	local tt = T.now() - t0
	local judged_to = T.now()
	T.is(ra, "continue", "stuck/accept: recipient continues")
	T.ok(ta < 1.5, "stuck/accept: answered within 1.5 s (timeout_ms 200)", "took " .. ta .. " s")
	T.is(rt, "replycode", "stuck/tempfail: recipient refused")
	T.ok(tt < 1.5, "stuck/tempfail: answered within 1.5 s (timeout_ms 200)", "took " .. tt .. " s")
	T.finish_message(ca, nil, "stuck/accept")
	T.must(mt.abort(ct), "abort")
	mt.disconnect(ca)
	mt.disconnect(ct)
	-- the verdicts above mean something only if Redis really was stuck
	-- while the recipients were judged; this also waits for the end of the
	-- sleep: after it the late replies must not be taken for later commands
	T.redis_sleep_check(stuck, judged_from, judged_to, "stuck")
	mt.sleep(0.2)
	local c2 = T.open({ label = "after stuck" })
	local counted = false
	for i = 1, 60 do
		one_message(c2, "after@example.com", { "a" .. i .. "@yahoo.com" }, "after stuck probe " .. i)
		if T.zcard(T.wkey("yahoo", "after@example.com")) > 0 then
			counted = true
			break
		end
		mt.sleep(0.25)
	end
	T.ok(counted, "after stuck: the milter uses Redis again within 15 s")
	T.is(T.mail(c2, "after2@example.com"), "continue", "after stuck: MAIL FROM")
	local r = T.rcpts(c2, T.addrs("gmail.com", 11))
	T.is(T.count(r, "continue"), 10, "after stuck: 10 recipients continue")
	T.is(r[11], "replycode", "after stuck: the 11th is refused")
	T.finish_message(c2, nil, "after stuck")
	T.is(T.wait_zcard(T.wkey("google", "after2@example.com"), 10), 10,
	    "after stuck: exactly 10 units in the window (no reply mixed up)")
	mt.disconnect(c2)
end

T.finish()
