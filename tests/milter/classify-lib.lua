-- classify-lib.lua - helpers shared by the classification scripts
-- (tests/milter/classify-*.lua), on top of mtlib.lua: whole messages with
-- chosen headers, the class header the milter added, hold and SMTP reply
-- checks, the decision log line taken apart, and the per-sender Redis keys
-- (relationships, velocity, blocks; README "Relationships", doc/REDIS.md).
dofile(srcdir .. "/tests/milter/mtlib.lua")

C = {}

C.HDR = "X-Outbound-Class"

-- per-sender keys: PREFIX{s:SENDER}:rel, :vel, :block
function C.rel_key(sender)
	return "obm:{s:" .. sender .. "}:rel"
end

function C.vel_key(sender)
	return "obm:{s:" .. sender .. "}:vel"
end

function C.block_key(sender)
	return "obm:{s:" .. sender .. "}:block"
end

-- milliseconds since the epoch
function C.now_ms()
	return math.floor(T.now() * 1000)
end

-- make each address of LIST a known correspondent of SENDER, last seen
-- AGE_MS ago (default now), straight in Redis
function C.know(sender, list, age_ms)
	local ms = tostring(C.now_ms() - (age_ms or 0))
	local args = { "zadd", C.rel_key(sender) }
	for _, a in ipairs(list) do
		table.insert(args, ms)
		table.insert(args, a)
	end
	return T.redis(table.unpack(args))
end

-- the members of a sorted set, as a set (table addr -> true) and a count
function C.members(key)
	local set, n = {}, 0
	for m in T.redis("zrange", key, "0", "-1"):gmatch("[^\n]+") do
		set[m] = true
		n = n + 1
	end
	return set, n
end

local seq = 0

-- the header list of a message: From SENDER (or o.from), To, Subject,
-- Message-ID and Date (unless o.no_message_id / o.no_date), then o.extra
-- ({{name, value}, ...})
function C.header_list(sender, o)
	o = o or {}
	seq = seq + 1
	local l = {
		{ "From", o.from or ("Sender <" .. sender .. ">") },
		{ "To", o.to or "recipients@example.net" },
		{ "Subject", "classification test " .. seq },
	}
	if not o.no_message_id then
		table.insert(l, { "Message-ID", "<" .. os.time() .. "." .. seq .. "." ..
		    math.random(1e9) .. "@example.com>" })
	end
	if not o.no_date then
		table.insert(l, { "Date", os.date("!%a, %d %b %Y %H:%M:%S +0000") })
	end
	for _, h in ipairs(o.extra or {}) do
		table.insert(l, h)
	end
	return l
end

-- C.send(conn, sender, rcpts, o): one whole message. o.qid (queue id,
-- also sent with the RCPT and end-of-message macros), o.auth, o.from,
-- o.extra, o.no_message_id, o.no_date as in C.header_list. Returns the
-- end-of-message reply name and the list of RCPT reply names; checks
-- that MAIL FROM and the header steps continue.
function C.send(conn, sender, rcpts, o)
	o = o or {}
	local label = o.qid or sender
	T.is(T.mail(conn, sender, { auth = o.auth }), "continue", label .. ": MAIL FROM continues")
	local r = T.rcpts(conn, rcpts, o.qid)
	local h = T.headers(conn, C.header_list(sender, o), label)
	if h ~= "continue" then
		T.is(h, "continue", label .. ": end of headers continues")
	end
	local b = T.body(conn, "Hello.\r\n")
	if b ~= "continue" then
		T.is(b, "continue", label .. ": body continues")
	end
	return T.eom(conn, o.qid), r
end

-- the value of our header added at end of message (leading blanks
-- removed), or nil when none was added
function C.added(conn)
	for _, idx in ipairs({ 0, 1 }) do
		local v = mt.getheader(conn, C.HDR, idx)
		if v ~= nil then
			return (v:gsub("^%s+", ""))
		end
	end
	return nil
end

-- did the filter add or insert a header named C.HDR (any value)
function C.any_added(conn)
	return mt.eom_check(conn, MT_HDRADD, C.HDR) or mt.eom_check(conn, MT_HDRINSERT, C.HDR)
end

-- assert the header added is exactly WANT
function C.header_is(conn, want, name)
	return T.is(C.added(conn), want, name)
end

-- did the filter delete (or change to nothing) a header named NAME
function C.deleted(conn, name)
	return mt.eom_check(conn, MT_HDRDELETE, name or C.HDR) or
	    mt.eom_check(conn, MT_HDRCHANGE, name or C.HDR)
end

-- did the filter ask for a hold (with REASON when given)
function C.held(conn, reason)
	if reason then
		return mt.eom_check(conn, MT_QUARANTINE, reason)
	end
	return mt.eom_check(conn, MT_QUARANTINE)
end

-- assert the end of message reply is the SMTP reply CODE XCODE TEXT
function C.reply_is(conn, code, xcode, text, name)
	local ok = mt.eom_check(conn, MT_SMTPREPLY, code, xcode, text)
	local diag = "want: " .. code .. " " .. xcode .. " " .. text
	if not ok then
		-- (Debian's miltertest answers false to the partial forms even
		-- when the code matches: only the whole reply can be checked)
		diag = diag .. "\nlast log lines:\n" .. T.log_tail(4)
	end
	return T.ok(ok, name, diag)
end

-- the decision line of queue id QID ("QID: class=..."), taken apart into
-- a table of its key=value fields (nil when it does not show up within
-- 3 s); field "line" is the whole line
function C.decision(qid)
	local line = T.wait_log({ qid .. ": class=" }, 3)
	if line == nil then
		return nil
	end
	local d = { line = line:gsub("^.-" .. qid:gsub("%p", "%%%0") .. ": ", "") }
	for k, v in line:gmatch("([%w_]+)=(%S+)") do
		d[k] = v
	end
	return d
end

-- assert the decision line of QID has every field of WANT
-- ({class = "bulk", reasons = "...", ...}); returns the decision
function C.decision_is(qid, want, name)
	local d = C.decision(qid)
	if d == nil then
		T.ok(false, name, "no decision line for " .. qid .. "\nlast log lines:\n" ..
		    T.log_tail(6))
		return nil
	end
	local bad = {}
	local keys = {}
	for k in pairs(want) do
		table.insert(keys, k)
	end
	table.sort(keys)
	for _, k in ipairs(keys) do
		if d[k] ~= tostring(want[k]) then
			table.insert(bad, k .. ": got " .. tostring(d[k]) .. ", want " ..
			    tostring(want[k]))
		end
	end
	T.ok(#bad == 0, name, table.concat(bad, "\n") .. "\nline: " .. d.line)
	return d
end

-- assert one message's outcome in one go: its end-of-message reply
-- (accept or continue for "accept"), the header added (WANT_HDR, or false
-- for none) and the decision fields
function C.expect(conn, qid, eom, want_hdr, decision, label)
	label = label or qid
	T.ok(eom == "accept" or eom == "continue", label .. ": end of message accepted",
	    "got: " .. tostring(eom) .. "\nlast log lines:\n" .. T.log_tail(4))
	if want_hdr then
		C.header_is(conn, want_hdr, label .. ": " .. C.HDR .. ": " .. want_hdr)
	elseif want_hdr == false then
		T.ok(not C.any_added(conn), label .. ": no " .. C.HDR .. " header added",
		    "added: " .. tostring(C.added(conn)))
	end
	if decision then
		C.decision_is(qid, decision, label .. ": decision line")
	end
end

-- addresses P1@DOMAIN .. PN@DOMAIN
function C.addrs(prefix, n, domain)
	local l = {}
	for i = 1, n do
		table.insert(l, prefix .. i .. "@" .. domain)
	end
	return l
end
