-- mtlib.lua - helpers shared by the miltertest scripts in tests/milter/.
-- Loaded with dofile(srcdir .. "/tests/milter/mtlib.lua"); the shell side
-- (tests/lib/milter.sh, mt_run) defines the globals srcdir, sock (milter
-- socket) and redis (Redis unix socket).
--
-- Assertions print "ok - NAME" or "not ok - NAME" lines that mt_run counts;
-- a protocol error (a mt.* call that fails) prints a "not ok" line and stops
-- the script. T.finish() prints "# end of script".

T = {}

local reply_names = {}
reply_names[SMFIR_CONTINUE] = "continue"
reply_names[SMFIR_ACCEPT] = "accept"
reply_names[SMFIR_TEMPFAIL] = "tempfail"
reply_names[SMFIR_REJECT] = "reject"
reply_names[SMFIR_DISCARD] = "discard"
reply_names[SMFIR_REPLYCODE] = "replycode"

-- name of a reply code, for messages
function T.rname(code)
	if code == nil then
		return "nil"
	end
	local n = reply_names[code]
	if n then
		return n
	end
	local c = math.tointeger(code) or code
	if type(c) == "number" and c > 31 and c < 127 then
		return "'" .. string.char(c) .. "'"
	end
	return tostring(code)
end

function T.diag(s)
	for line in tostring(s):gmatch("[^\n]+") do
		print("# " .. line)
	end
end

function T.ok(cond, name, diag)
	if cond then
		print("ok - " .. name)
	else
		print("not ok - " .. name)
		if diag then
			T.diag(diag)
		end
	end
	io.stdout:flush()
	return cond
end

function T.is(got, want, name)
	return T.ok(got == want, name,
	    "got:  " .. tostring(got) .. "\nwant: " .. tostring(want))
end

-- a mt.* call returned ERR (non-nil): report and stop the script
function T.must(err, what)
	if err ~= nil then
		print("not ok - " .. what .. ": " .. tostring(err))
		io.stdout:flush()
		error(what .. ": " .. tostring(err))
	end
end

-- shell quoting for one argument
function T.q(s)
	return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- run redis-cli on the test's Redis; returns its output without the
-- trailing newline
function T.redis(...)
	local cmd = "redis-cli -s " .. T.q(redis)
	for _, a in ipairs({ ... }) do
		cmd = cmd .. " " .. T.q(a)
	end
	local p = io.popen(cmd .. " 2>&1")
	local out = p:read("a")
	p:close()
	return (out:gsub("\n$", ""))
end

-- T.redis_scan(PATTERN): the matching keys, newline-separated (as
-- T.redis("--scan", ...) returns them); stops the script with a failure
-- when redis-cli fails (Redis unreachable), so that "no key" can never be
-- read from a Redis that did not answer
function T.redis_scan(pattern)
	local p = io.popen("redis-cli -s " .. T.q(redis) .. " --scan --pattern " .. T.q(pattern) .. " 2>&1")
	local out = p:read("a")
	local ok, _, code = p:close()
	if not ok then
		T.ok(false, "Redis answered SCAN " .. pattern,
		    "missing evidence: redis-cli exited " .. tostring(code) .. ": " .. out)
		error("Redis did not answer SCAN " .. pattern)
	end
	return (out:gsub("\n$", ""))
end

function T.zcard(key)
	return tonumber(T.redis("zcard", key)) or -1
end

-- wait up to TMO seconds (default 3) for zcard(KEY) == WANT; returns the
-- last value seen
function T.wait_zcard(key, want, tmo)
	local n
	local tries = math.floor((tmo or 3) / 0.05)
	for _ = 1, tries do
		n = T.zcard(key)
		if n == want then
			return n
		end
		mt.sleep(0.05)
	end
	return T.zcard(key)
end

-- rate window keys of the test configuration (tests/lib/milter.sh)
function T.wkey(network, scope, rule)
	return "obm:{" .. network .. "}:w:" .. (rule or "per-sender") .. ":" .. scope
end

function T.pkey(network, scope, rule)
	return "obm:{" .. network .. "}:p:" .. (rule or "per-sender") .. ":" .. scope
end

-- T.open{ ip = "127.0.0.1", host = "client.example", daemon = "ORIGINATING" }
-- connects to the milter and sends the connect macros and information
function T.open(o)
	o = o or {}
	local conn = mt.connect(sock, 40, 0.25)
	if conn == nil then
		print("not ok - connect to " .. tostring(sock))
		error("mt.connect() failed")
	end
	mt.set_timeout(15)
	local macros = { "j", "mx.test.example", "{daemon_name}", o.daemon or "smtpd",
	    "{daemon_addr}", "127.0.0.1", "v", "Postfix 3.7" }
	T.must(mt.macro(conn, SMFIC_CONNECT, table.unpack(macros)), "connect macros")
	T.must(mt.conninfo(conn, o.host or "client.test.example", o.ip or "127.0.0.1"),
	    "conninfo")
	T.is(T.rname(mt.getreply(conn)), "continue", (o.label or "connect") .. ": continue")
	if not T.off(conn, SMFIP_NOHELO) then
		T.must(mt.helo(conn, "client.test.example"), "helo")
	end
	return conn
end

-- T.mail(conn, sender, { auth = "alice" }): MAIL FROM; returns the reply name
function T.mail(conn, sender, o)
	o = o or {}
	local macros = { "{mail_addr}", sender }
	if o.auth then
		table.insert(macros, "{auth_authen}")
		table.insert(macros, o.auth)
		table.insert(macros, "{auth_type}")
		table.insert(macros, "PLAIN")
	end
	T.must(mt.macro(conn, SMFIC_MAIL, table.unpack(macros)), "mail macros")
	T.must(mt.mailfrom(conn, "<" .. sender .. ">"), "mailfrom " .. sender)
	return T.rname(mt.getreply(conn))
end

-- T.rcpt(conn, addr, qid): RCPT TO; returns the reply name
function T.rcpt(conn, addr, qid)
	local m = { "{rcpt_addr}", addr }
	if qid then
		table.insert(m, "i")
		table.insert(m, qid)
	end
	T.must(mt.macro(conn, SMFIC_RCPT, table.unpack(m)), "rcpt macros")
	T.must(mt.rcptto(conn, "<" .. addr .. ">"), "rcptto " .. addr)
	return T.rname(mt.getreply(conn))
end

-- T.rcpts(conn, list, qid): several RCPTs; returns the list of replies
function T.rcpts(conn, list, qid)
	local r = {}
	for i, a in ipairs(list) do
		r[i] = T.rcpt(conn, a, qid)
	end
	return r
end

-- addresses u1@DOMAIN .. uN@DOMAIN (starting at FIRST, default 1)
function T.addrs(domain, n, first, prefix)
	local l = {}
	first = first or 1
	for i = first, first + n - 1 do
		table.insert(l, (prefix or "u") .. i .. "@" .. domain)
	end
	return l
end

-- did the filter turn protocol step OPT off (or its reply) at negotiation
function T.off(conn, opt)
	return opt ~= nil and mt.test_option(conn, opt)
end

-- T.headers(conn, list): send headers {{name, value}, ...} and EOH, the
-- steps the filter did not turn off; returns the last reply name
function T.headers(conn, list, label)
	list = list or {
		{ "From", "Sender <sender@example.com>" },
		{ "To", "someone@example.org" },
		{ "Subject", "test message" },
		{ "Message-ID", "<" .. os.time() .. "." .. math.random(1e9) .. "@example.com>" },
	}
	if not T.off(conn, SMFIP_NOHDRS) then
		for _, h in ipairs(list) do
			T.must(mt.header(conn, h[1], h[2]), "header " .. h[1])
			if not T.off(conn, SMFIP_NR_HDR) then
				local r = T.rname(mt.getreply(conn))
				if r ~= "continue" then
					T.is(r, "continue", (label or "header") .. " " .. h[1])
				end
			end
		end
	end
	if T.off(conn, SMFIP_NOEOH) then
		return "continue"
	end
	T.must(mt.eoh(conn), "eoh")
	if T.off(conn, SMFIP_NR_EOH) then
		return "continue"
	end
	return T.rname(mt.getreply(conn))
end

-- T.body(conn, text)
function T.body(conn, text)
	if T.off(conn, SMFIP_NOBODY) then
		return "continue"
	end
	T.must(mt.bodystring(conn, text or "Hello.\r\n"), "body")
	if T.off(conn, SMFIP_NR_BODY) then
		return "continue"
	end
	return T.rname(mt.getreply(conn))
end

-- T.eom(conn, qid): end of message; returns the reply name
function T.eom(conn, qid)
	if qid then
		-- end-of-message macros (SMFIC_BODYEOB, 'E')
		T.must(mt.macro(conn, string.byte("E"), "i", qid), "eom macros")
	end
	T.must(mt.eom(conn), "eom")
	return T.rname(mt.getreply(conn))
end

-- T.finish_message(conn, qid, label): headers, body and EOM; checks that
-- each step continues and the end of message accepts; returns the EOM reply
function T.finish_message(conn, qid, label)
	label = label or "message"
	local r = T.headers(conn, nil, label)
	T.is(r, "continue", label .. ": end of headers continues")
	r = T.body(conn)
	T.is(r, "continue", label .. ": body continues")
	r = T.eom(conn, qid)
	T.ok(r == "accept" or r == "continue", label .. ": end of message accepted",
	    "got: " .. r)
	return r
end

-- count how many entries of LIST equal WANT
function T.count(list, want)
	local n = 0
	for _, v in ipairs(list) do
		if v == want then
			n = n + 1
		end
	end
	return n
end

-- every reply in LIST is WANT
function T.all(list, want, name)
	local bad = {}
	for i, v in ipairs(list) do
		if v ~= want then
			table.insert(bad, "#" .. i .. "=" .. v)
		end
	end
	return T.ok(#bad == 0, name, "want all " .. want .. "; got " .. table.concat(bad, ", "))
end

-- the whole log file of a milter (path given by the shell as mlog)
function T.log()
	local f = io.open(mlog or "", "r")
	if not f then
		return ""
	end
	local s = f:read("a")
	f:close()
	return s
end

-- lines of the milter log that contain every string of NEEDLES (plain
-- substrings, not patterns)
function T.log_lines(needles)
	local found = {}
	for line in T.log():gmatch("[^\n]+") do
		local all = true
		for _, n in ipairs(needles) do
			if not line:find(n, 1, true) then
				all = false
				break
			end
		end
		if all then
			table.insert(found, line)
		end
	end
	return found
end

-- wait up to TMO seconds (default 3) for a log line containing every
-- string of NEEDLES; returns the line or nil
function T.wait_log(needles, tmo)
	if type(needles) == "string" then
		needles = { needles }
	end
	local tries = math.floor((tmo or 3) / 0.05)
	for _ = 1, tries do
		local l = T.log_lines(needles)
		if #l > 0 then
			return l[1]
		end
		mt.sleep(0.05)
	end
	return nil
end

-- wait up to TMO seconds (default 5) until at least N log lines contain
-- every string of NEEDLES; returns how many do
function T.wait_log_count(needles, n, tmo)
	local tries = math.floor((tmo or 5) / 0.05)
	local c = 0
	for _ = 1, tries do
		c = #T.log_lines(needles)
		if c >= n then
			return c
		end
		mt.sleep(0.05)
	end
	return c
end

-- assert that a log line with every string of NEEDLES shows up
function T.log_has(needles, name, tmo)
	if type(needles) == "string" then
		needles = { needles }
	end
	local line = T.wait_log(needles, tmo)
	T.ok(line ~= nil, name, "no log line containing all of: " ..
	    table.concat(needles, " | ") .. "\nlast log lines:\n" .. T.log_tail(8))
	return line
end

-- the last N lines of the milter log
function T.log_tail(n)
	local lines = {}
	for line in T.log():gmatch("[^\n]+") do
		table.insert(lines, line)
	end
	local first = math.max(1, #lines - n + 1)
	return table.concat(lines, "\n", first, #lines)
end

-- current time in seconds with decimals
function T.now()
	local p = io.popen("date +%s.%N")
	local s = p:read("l")
	p:close()
	return tonumber(s)
end

-- T.redis_sleep(SECS): make Redis stuck with DEBUG SLEEP SECS, in the
-- background; returns a handle for T.redis_sleep_check. The reply and the
-- time it came back are written to files, so that the check can tell when
-- the server was really blocked.
function T.redis_sleep(secs)
	local f = os.tmpname()
	os.execute("(redis-cli -s " .. T.q(redis) .. " debug sleep " .. secs .. " >" ..
	    T.q(f .. ".reply") .. " 2>&1; date +%s.%N >" .. T.q(f .. ".end") .. ") &")
	return { file = f, secs = tonumber(secs), sent = T.now() }
end

local function slurp(path)
	local fh = io.open(path, "r")
	if fh == nil then
		return nil
	end
	local s = fh:read("a")
	fh:close()
	return s
end

-- T.redis_sleep_check(H, FROM, TO, LABEL): waits for the DEBUG SLEEP reply
-- (up to its length + 10 s) and checks the evidence that Redis was stuck
-- over the judged window FROM..TO (epoch seconds): the reply is OK and came
-- back at END with END - SECS <= FROM (it was already blocked at FROM; END
-- is measured late, so the test is conservative) and END >= TO. Returns
-- true/false and the epoch time the block is known to have started.
function T.redis_sleep_check(h, from, to, label)
	local deadline = h.sent + h.secs + 10
	local e
	while true do
		e = slurp(h.file .. ".end")
		if e ~= nil and e:match("%d") then
			break
		end
		if T.now() > deadline then
			break
		end
		mt.sleep(0.1)
	end
	local reply = (slurp(h.file .. ".reply") or "(no reply file)"):gsub("%s+$", "")
	local t_end = e and tonumber(e:match("[%d.]+"))
	os.remove(h.file)
	os.remove(h.file .. ".reply")
	os.remove(h.file .. ".end")
	if t_end == nil then
		T.ok(false, label .. ": Redis was stuck (DEBUG SLEEP " .. h.secs .. " returned)",
		    "missing evidence: no DEBUG SLEEP reply within " .. (h.secs + 10) .. " s; reply: " .. reply)
		return false, from
	end
	local started = t_end - h.secs
	T.ok(reply == "OK" and started <= from and t_end >= to,
	    label .. ": Redis was stuck over the judged window (DEBUG SLEEP " .. h.secs .. " took effect)",
	    string.format("reply '%s'; blocked %.3f..%.3f, judged window %.3f..%.3f", reply,
	        started, t_end, from, to))
	return reply == "OK" and started <= from and t_end >= to, started
end

function T.finish()
	print("# end of script")
	io.stdout:flush()
end

math.randomseed(os.time())
