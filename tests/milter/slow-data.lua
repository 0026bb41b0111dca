-- slow-data.lua - session A reserves its recipient and then holds its
-- DATA past reservation_ttl (10 s); meanwhile session B of the same sender
-- reserves on the same window. A's reservation is still pending (the
-- milter renews it while A lives), so B gets the hour's last unit and its
-- second recipient is refused; B completes, then A completes. The hourly
-- window counts both messages, each at its admission time, and refuses a
-- third (hourly = 2). Run by slow-data.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

local S = "slow@example.com"
local W = T.wkey("google", S)
local P = T.pkey("google", S)

local function now_ms()
	return math.floor(T.now() * 1000)
end

-- the scores of the window, ascending
local function scores()
	local l = {}
	local out = T.redis("zrange", W, "0", "-1", "withscores")
	local i = 0
	for line in out:gmatch("[^\n]+") do
		i = i + 1
		if i % 2 == 0 then
			table.insert(l, tonumber(line))
		end
	end
	return l
end

-- session A: reserves, starts its DATA, then stalls
local a = T.open({ label = "session A" })
T.is(T.mail(a, S), "continue", "A: MAIL FROM")
local a0 = now_ms()
T.is(T.rcpt(a, "r1@gmail.com", "QIDSLOWA"), "continue", "A: recipient continues")
local a1 = now_ms()
T.is(T.zcard(P), 1, "A: its unit is pending")
T.is(T.headers(a, nil, "A"), "continue", "A: end of headers continues")
mt.sleep(11)

-- session B: same sender, same window, once A's first expiry has passed
local b = T.open({ label = "session B" })
T.is(T.mail(b, S), "continue", "B: MAIL FROM")
local b0 = now_ms()
T.is(T.rcpt(b, "r2@gmail.com", "QIDSLOWB"), "continue", "B: recipient continues")
local b1 = now_ms()
T.is(T.zcard(P), 2, "B: A's reservation, 11 s old, is still pending beside B's")
T.is(T.zcard(W), 2, "B: the window holds A's unit and B's")
T.is(T.rcpt(b, "r4@gmail.com", "QIDSLOWB"), "replycode",
    "B: a second recipient is refused: slow A still counts")
T.log_has({ "QIDSLOWB: action=tempfail rcpt=r4@gmail.com network=google rule=per-sender",
    "limit=hourly used=2/2" }, "B: refused by the hourly limit, 2 of 2 used")
T.finish_message(b, "QIDSLOWB", "B")

-- A completes its DATA
T.is(T.body(a, "A slow message.\r\n"), "continue", "A: body continues")
local r = T.eom(a, "QIDSLOWA")
T.ok(r == "accept" or r == "continue", "A: end of message accepted", "got: " .. r)

-- both messages counted, each at its admission time
T.is(T.wait_zcard(P, 0), 0, "nothing left pending")
T.is(T.zcard(W), 2, "the hourly window counts both messages")
local s = scores()
T.ok(s[1] ~= nil and s[1] >= a0 and s[1] <= a1,
    "A's unit is counted at its admission time",
    "score " .. tostring(s[1]) .. ", RCPT between " .. a0 .. " and " .. a1)
T.ok(s[2] ~= nil and s[2] >= b0 and s[2] <= b1,
    "B's unit is counted at its admission time",
    "score " .. tostring(s[2]) .. ", RCPT between " .. b0 .. " and " .. b1)
local ttl = tonumber(T.redis("pttl", W)) or -2
T.ok(ttl > 3600000 and ttl <= 3610000, "the window keeps its TTL of 1 h + reservation_ttl",
    "pttl " .. ttl)

-- and the limit holds: a third message within the hour is refused
local c = T.open({ label = "session C" })
T.is(T.mail(c, S), "continue", "C: MAIL FROM")
T.is(T.rcpt(c, "r3@gmail.com", "QIDSLOWC"), "replycode", "C: the third recipient is refused")
T.must(mt.abort(c), "abort")
T.log_has({ "QIDSLOWC: action=tempfail rcpt=r3@gmail.com network=google rule=per-sender",
    "limit=hourly used=2/2" }, "C: refused by the hourly limit, 2 of 2 used")

mt.disconnect(a)
mt.disconnect(b)
mt.disconnect(c)
T.finish()
