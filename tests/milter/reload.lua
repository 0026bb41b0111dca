-- reload.lua - SIGHUP reloads; driven from reload.sh, which wrote the
-- files conf-10, conf-12, conf-12-monitor and conf-bad into tdir and
-- passes the running configuration path (conf) and the milter pid (mpid).
dofile(srcdir .. "/tests/milter/mtlib.lua")

local S = "a@example.com"
local reloads = 0

-- install configuration file NAME and send SIGHUP
local function reload(name, label)
	os.execute("cp " .. T.q(tdir .. "/" .. name) .. " " .. T.q(conf))
	os.execute("kill -HUP " .. mpid)
end

local function reload_ok(name, label)
	reload(name)
	reloads = reloads + 1
	T.is(T.wait_log_count({ "configuration", "reloaded" }, reloads), reloads,
	    label .. ": reload logged")
end

-- burst 10: 10 pass, the 11th is refused
local conn = T.open({ label = "burst 10" })
T.is(T.mail(conn, S), "continue", "burst 10: MAIL FROM")
local r = T.rcpts(conn, T.addrs("gmail.com", 11))
T.is(T.count(r, "continue"), 10, "burst 10: 10 recipients continue")
T.is(r[11], "replycode", "burst 10: the 11th is refused")
T.finish_message(conn, nil, "burst 10")
mt.disconnect(conn)

-- burst 12 after SIGHUP: the 10 already sent still count (history kept)
reload_ok("conf-12", "burst 12")
conn = T.open({ label = "burst 12" })
T.is(T.mail(conn, S), "continue", "burst 12: MAIL FROM")
r = T.rcpts(conn, T.addrs("gmail.com", 2, 20))
T.all(r, "continue", "burst 12: 2 more recipients continue")
T.is(T.zcard(T.wkey("google", S)), 12, "burst 12: 12 units in the window (history kept)")

-- switch to monitor mode while this transaction is open: it finishes
-- under the configuration it started with (enforce)
reload_ok("conf-12-monitor", "monitor")
T.is(T.rcpt(conn, "u30@gmail.com"), "replycode",
    "in-flight transaction still enforces after the reload")
T.finish_message(conn, nil, "in-flight")
T.log_has({ "action=tempfail rcpt=u30@gmail.com", "used=12/12" },
    "in-flight refusal logged against burst 12")
mt.disconnect(conn)

-- a new connection gets monitor mode
conn = T.open({ label = "monitor" })
T.is(T.mail(conn, S), "continue", "monitor: MAIL FROM")
T.is(T.rcpt(conn, "u31@gmail.com"), "continue", "monitor: the new connection is not refused")
T.finish_message(conn, nil, "monitor")
T.log_has({ "action=would-tempfail rcpt=u31@gmail.com" }, "monitor: would-tempfail logged")
mt.disconnect(conn)

-- a broken file is refused; monitor mode stays in force
reload("conf-bad")
T.ok(T.wait_log({ "reload of", "refused" }, 5) ~= nil, "broken file: reload refused and logged")
conn = T.open({ label = "after refused reload" })
T.is(T.mail(conn, S), "continue", "after refused reload: MAIL FROM")
T.is(T.rcpt(conn, "u32@gmail.com"), "continue", "after refused reload: still monitor mode")
T.finish_message(conn, nil, "after refused reload")
mt.disconnect(conn)

-- back to enforce with burst 12
reload_ok("conf-12", "enforce again")
conn = T.open({ label = "enforce again" })
T.is(T.mail(conn, S), "continue", "enforce again: MAIL FROM")
T.is(T.rcpt(conn, "u33@gmail.com"), "replycode", "enforce again: the 13th is refused")
T.is(T.rcpt(conn, "y1@yahoo.com"), "continue", "enforce again: yahoo.com continues")
T.finish_message(conn, nil, "enforce again")
mt.disconnect(conn)

T.finish()
