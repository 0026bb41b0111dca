-- logfields.lua - hostile envelope senders, recipients and logins through
-- the milter protocol: quoted local parts with spaces and forged fields
-- inside, '=' (SRS), quotes, UTF-8. Each message has two or three
-- recipients on one network (burst 2 in logfields.sh), so that the third
-- is refused and logged too. Only the replies are checked here; the log
-- lines and the decision log are read back field by field by
-- logfields.sh. Run by logfields.sh.
dofile(srcdir .. "/tests/milter/mtlib.lua")

-- qid, envelope sender, recipients (the third refused), login
local messages = {
	{ "LF0001", '"x client=1.2.3.4"@evil.example',
	    { "u1@gmail.com", '"v client=6.6.6.6"@gmail.com',
	      '"y rcpt=z@gmail.com network=yahoo"@gmail.com' } },
	{ "LF0002", "A=B@X.Example", { "c=d@yahoo.com", "e=f@yahoo.com", '"g h=i"@yahoo.com' } },
	{ "LF0003", "SRS0=ab=cd=example.com=u@fwd.example", { "u3@gmail.com" } },
	{ "LF0004", '"a reasons=- class=personal"@evil.example', { "u4@gmail.com" } },
	{ "LF0005", '"say \\"hi\\" sender=x@y"@evil.example', { "u5@gmail.com" } },
	{ "LF0006", "J\195\182rg@Evil.example", { "u6@gmail.com" } },
	{ "LF0007", "plain@example.com", { "u7@gmail.com" }, "Evil Client=1.2.3.4" },
	-- a queue id that is not plain (an MTA's, never a client's: quoted all the same)
	{ "LF 8 client=6.6.6.6", "q8@example.com", { "u8@gmail.com" } },
}

local conn = T.open()
for _, m in ipairs(messages) do
	local qid, sender, rcpts, login = m[1], m[2], m[3], m[4]
	T.is(T.mail(conn, sender, { auth = login }), "continue", qid .. ": MAIL FROM " .. sender)
	for i, r in ipairs(rcpts) do
		T.is(T.rcpt(conn, r, qid), i <= 2 and "continue" or "replycode",
		    qid .. ": RCPT TO " .. r .. (i <= 2 and " continues" or " refused (burst 2)"))
	end
	T.finish_message(conn, qid, qid)
	T.log_has({ qid, " class=" }, qid .. ": its decision line is logged")
end
mt.disconnect(conn)
T.finish()
