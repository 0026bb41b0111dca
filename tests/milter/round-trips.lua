-- round-trips.lua - Redis round trips per message, from Redis's own
-- counters: total_writes_processed (one write per pipeline answered),
-- less the PING and SCRIPT LOAD of connections made meanwhile (libmilter's
-- worker threads come and go; a connection is set up once). Run by
-- round-trips.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

-- Redis's counters, read with one INFO (one connection, one reply)
local function counters()
	local info = T.redis("info", "stats", "commandstats")
	local function n(pat)
		return tonumber(info:match(pat)) or 0
	end
	return {
		writes = n("total_writes_processed:(%d+)"),
		conns = n("total_connections_received:(%d+)"),
		setup = n("cmdstat_ping:calls=(%d+)") + n("cmdstat_script|load:calls=(%d+)")
		    + n("cmdstat_script:calls=(%d+)"),
	}
end

-- round trips Redis answered while FN ran, less those of setting up a
-- connection (its PING, its SCRIPT LOAD), which are returned apart
local function measure(fn)
	local a = counters()
	fn()
	local b = counters()
	-- the first INFO's own reply is written after it counted
	local setup = b.setup - a.setup
	return b.writes - a.writes - 1 - setup, setup, b.conns - a.conns - 1
end

local function check(label, want, fn)
	local got, setup, conns = measure(fn)
	T.is(got, want, label .. ": " .. want .. " round trips")
	if setup > 0 then
		T.diag(label .. ": besides, " .. setup .. " PING/SCRIPT LOAD, " .. conns ..
		    " new connection(s)")
	end
end

local conn = T.open()
local seq = 0

local function message(sender, rcpts, o)
	seq = seq + 1
	local qid = string.format("RT%04d", seq)
	T.mail(conn, sender, o)
	local r = T.rcpts(conn, rcpts, qid)
	T.finish_message(conn, qid, qid)
	return r
end

local function mixed(n, first)
	local l = {}
	local domains = { "gmail.com", "yahoo.com", "example.org", "example.net" }
	for i = 1, n do
		table.insert(l, "r" .. (first + i) .. "@" .. domains[(i % #domains) + 1])
	end
	return l
end

-- warm-up: this thread's connection made, the script loaded
message("warm@example.com", { "w@gmail.com" })

check("1 recipient", 2, function() message("a@example.com", mixed(1, 0)) end)
check("10 recipients over 4 networks", 11, function() message("a@example.com", mixed(10, 10)) end)
check("30 recipients", 31, function() message("b@example.com", mixed(30, 100)) end)
check("5 messages of 4 recipients on one connection", 25, function()
	for i = 1, 5 do
		message("c" .. i .. "@example.com", mixed(4, 200 + 10 * i))
	end
end)
-- exempt: no reservation, the lookups still go with each recipient
check("exempt sender, 3 recipients", 4, function()
	message("exempt@example.com", mixed(3, 300))
end)
-- internal recipients: only the first reads the message's inputs
check("3 internal recipients", 2, function()
	message("d@example.com", { "x@ours.example", "y@ours.example", "z@ours.example" })
end)
-- the null sender is looked up like anyone (its identity is the client)
check("null sender, 3 recipients", 4, function() message("", mixed(3, 400)) end)
-- the burst (35 a network) refuses recipients 36..40: still one round trip each
local refused = 0
check("40 gmail.com recipients, 5 refused by the burst", 41, function()
	for _, r in ipairs(message("e@example.com", T.addrs("gmail.com", 40, 500))) do
		if r ~= "continue" then
			refused = refused + 1
		end
	end
end)
T.is(refused, 5, "the burst refused 5 recipients")

T.finish()
