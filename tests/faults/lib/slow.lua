-- slow.lua - miltertest script of tests/faults/redis-slow.sh: make Redis
-- stuck (DEBUG SLEEP) and time every callback of the milter that answers:
-- connect, MAIL, each RCPT, each header, end of headers, body, end of
-- message, and MAIL after an abort (an abort has no reply of its own: its
-- work shows in the next command). First PREPARE transactions get their
-- recipients reserved while Redis still answers, and are finished once it
-- is stuck (end of message, or abort: the units must be committed or given
-- back); then whole transactions run until RUN_S seconds into the sleep.
-- Globals from the shell: srcdir, sock, redis, policy (accept|tempfail),
-- sleep_s (0: Redis is not made stuck), prepare, run_s, bound_ms (the
-- longest answer allowed), label. Prints "# stuck-window FROM TO" (epoch
-- seconds) and waits for the end of the sleep.
dofile(srcdir .. "/tests/milter/mtlib.lua")

local bound = tonumber(bound_ms)
local sleep_for = tonumber(sleep_s) or 0
local worst = {}	-- callback name -> longest answer (ms)
local counts = {}	-- callback name -> answers timed
local over = {}		-- "callback #n: ms" over the bound

-- a clock without starting a process: /proc/uptime (10 ms resolution)
local function clock()
	local f = io.open("/proc/uptime", "r")
	local s = f:read("n")
	f:close()
	return s
end

local function timed(name, f, ...)
	local t0 = clock()
	local r = f(...)
	local ms = (clock() - t0) * 1000
	counts[name] = (counts[name] or 0) + 1
	if ms > (worst[name] or 0) then
		worst[name] = ms
	end
	if ms > bound then
		table.insert(over, string.format("%s #%d: %.0f ms", name, counts[name], ms))
	end
	return r
end

local hdrs = {
	{ "From", "Sender <slow@example.com>" },
	{ "To", "someone@gmail.com" },
	{ "Subject", "slow redis" },
	{ "Message-ID", "<slow." .. os.time() .. "@example.com>" },
	{ "Date", os.date("!%a, %d %b %Y %H:%M:%S +0000") },
}

local function headers(conn)
	for _, h in ipairs(hdrs) do
		timed("header", function()
			T.must(mt.header(conn, h[1], h[2]), "header")
			if T.off(conn, SMFIP_NR_HDR) then
				return "continue"
			end
			return T.rname(mt.getreply(conn))
		end)
	end
	if not T.off(conn, SMFIP_NOEOH) then
		timed("eoh", function()
			T.must(mt.eoh(conn), "eoh")
			if T.off(conn, SMFIP_NR_EOH) then
				return "continue"
			end
			return T.rname(mt.getreply(conn))
		end)
	end
end

-- transactions with their units reserved while Redis answers
local pending = {}
for i = 1, tonumber(prepare) or 0 do
	local conn = T.open({ label = label .. " prepare " .. i })
	local sender = "slowp" .. i .. "@example.com"
	T.is(T.mail(conn, sender), "continue", label .. " prepare " .. i .. ": MAIL FROM")
	T.all(T.rcpts(conn, { "p" .. i .. "@gmail.com", "p" .. i .. "@yahoo.com" }, "PREP" .. i),
	    "continue", label .. " prepare " .. i .. ": recipients reserved")
	table.insert(pending, { conn = conn, sender = sender })
end

local t_stuck = T.now()
local stuck
if sleep_for > 0 then
	stuck = T.redis_sleep(sleep_for)
	mt.sleep(0.3)	-- redis-cli has sent the command: Redis is stuck
end
local t_judged = T.now()
local stop_at = t_stuck + tonumber(run_s)

for i, p in ipairs(pending) do
	if i % 2 == 1 then
		headers(p.conn)
		timed("body", T.body, p.conn)
		local r = timed("eom-reserved", T.eom, p.conn, "PREP" .. i)
		T.ok(r == "accept" or r == "continue" or (policy == "tempfail" and r == "replycode"),
		    label .. " prepare " .. i .. ": end of message answered", "got: " .. r)
	else
		T.must(mt.abort(p.conn), "abort")
		local r = timed("mail-after-abort-reserved", T.mail, p.conn, p.sender)
		T.is(r, "continue", label .. " prepare " .. i .. ": MAIL FROM after abort")
		T.must(mt.abort(p.conn), "abort")
	end
	mt.disconnect(p.conn)
end

-- checks inside the loop are summed up, not printed one by one
local bad = {}
local function check(cond, what)
	if not cond then
		table.insert(bad, what)
	end
end

-- T.open without its "ok" line
local function open_quiet(what)
	local conn = mt.connect(sock, 40, 0.25)
	if conn == nil then
		error("mt.connect() failed")
	end
	mt.set_timeout(15)
	T.must(mt.macro(conn, SMFIC_CONNECT, "j", "mx.test.example", "{daemon_name}", "smtpd",
	    "{daemon_addr}", "127.0.0.1", "v", "Postfix 3.7"), "connect macros")
	T.must(mt.conninfo(conn, "client.test.example", "127.0.0.1"), "conninfo")
	local r = T.rname(mt.getreply(conn))
	check(r == "continue", what .. ": connect got " .. r)
	if not T.off(conn, SMFIP_NOHELO) then
		T.must(mt.helo(conn, "client.test.example"), "helo")
	end
	return conn
end

local n = 0
local replies = {}
while T.now() < stop_at do
	n = n + 1
	local conn = timed("connect", open_quiet, "#" .. n)
	local sender = "slow" .. n .. "@example.com"
	local r = timed("mail", T.mail, conn, sender)
	check(r == "continue", "#" .. n .. ": MAIL FROM got " .. r)
	local rr = {}
	for _, a in ipairs({ "s" .. n .. "@gmail.com", "s" .. n .. "@yahoo.com",
	    "s" .. n .. "@example.org" }) do
		table.insert(rr, timed("rcpt", T.rcpt, conn, a, "SLOW" .. n))
	end
	for _, x in ipairs(rr) do
		replies[x] = (replies[x] or 0) + 1
	end
	if n % 3 == 0 then
		-- abort, then a MAIL on the same connection pays for the abort
		T.must(mt.abort(conn), "abort")
		r = timed("mail-after-abort", T.mail, conn, sender)
		check(r == "continue", "#" .. n .. ": MAIL FROM after abort got " .. r)
		T.must(mt.abort(conn), "abort")
	elseif policy == "accept" or T.count(rr, "continue") > 0 then
		headers(conn)
		timed("body", T.body, conn)
		r = timed("eom", T.eom, conn, "SLOW" .. n)
		if policy == "accept" then
			check(r == "accept" or r == "continue", "#" .. n ..
			    ": end of message (on_error=accept) got " .. r)
		else
			check(r == "accept" or r == "continue" or r == "replycode", "#" .. n ..
			    ": end of message got " .. r)
		end
	end
	mt.disconnect(conn)
end

local t_loop_end = T.now()
if stuck ~= nil then
	-- every verdict below assumes Redis was stuck: check that it was, from
	-- the first judged callback to the last
	local ok, started = T.redis_sleep_check(stuck, t_judged, t_loop_end, label)
	if ok and started > t_stuck then
		t_stuck = started
	end
end
print(string.format("# stuck-window %.3f %.3f", t_stuck, t_loop_end))
T.ok(#bad == 0, label .. ": " .. n .. " transactions, MAIL FROM continued and the end of " ..
    "message was answered as on_error says", table.concat(bad, "\n"))
-- wait for Redis to answer again
if sleep_for > 0 then
	local left = t_stuck + sleep_for + 0.2 - T.now()
	if left > 0 then
		mt.sleep(left)
	end
end

-- what on_error says
if sleep_for == 0 then
	T.is(replies["replycode"] or 0, 0, label .. ": no recipient refused")
elseif policy == "accept" then
	T.is(replies["replycode"] or 0, 0, label .. ": no recipient refused while Redis is stuck")
else
	T.ok((replies["replycode"] or 0) > 0, label .. ": recipients refused while Redis is stuck")
end
T.ok(n >= 3, label .. ": at least 3 transactions while Redis was stuck", "ran " .. n)

local names = {}
for k in pairs(worst) do
	table.insert(names, k)
end
table.sort(names)
local all = 0
for _, k in ipairs(names) do
	print(string.format("# latency %s %s: longest %.0f ms over %d answers", label, k, worst[k],
	    counts[k]))
	if worst[k] > all then
		all = worst[k]
	end
end
print(string.format("# latency %s: longest callback %.0f ms", label, all))
T.ok(#over == 0, label .. ": every callback answered within " .. bound .. " ms",
    table.concat(over, "\n"))
T.finish()
