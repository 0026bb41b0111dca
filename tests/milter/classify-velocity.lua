-- classify-velocity.lua - velocity across messages (personal_max_hourly =
-- 5, every class tagged). Run by classify-velocity.sh.
dofile(srcdir .. "/tests/milter/classify-lib.lua")

local conn = T.open()
local S = "v@example.com"
local HOUR_MS = 3600 * 1000

local function send(qid, sender, rcpts, hdr, decision, o)
	o = o or {}
	o.qid = qid
	local e = C.send(conn, sender, rcpts, o)
	C.expect(conn, qid, e, hdr, decision)
end

-- five messages to five recipients: velocity 1..5, personal
for i = 1, 5 do
	send("VEL000" .. i, S, { "r" .. i .. "@gmail.com" },
	    "personal; rcpts=1; known=0; velocity=" .. i,
	    { class = "personal", velocity = i, reasons = "-" })
end
T.is(T.zcard(C.vel_key(S)), 5, "the velocity set holds the 5 distinct recipients")
local ttl = tonumber(T.redis("pttl", C.vel_key(S))) or -2
T.ok(ttl > 0 and ttl <= HOUR_MS + 60000, "the velocity key expires within about an hour",
    "pttl " .. ttl)

-- the same recipient again (and again, differently spelt): still 5
send("VEL0006", S, { "r1@gmail.com" }, "personal; rcpts=1; known=1; velocity=5",
    { class = "personal", velocity = 5 })
send("VEL0007", S, { "R2@GMail.com" }, "personal; rcpts=1; known=1; velocity=5",
    { class = "personal", velocity = 5 })

-- a sixth distinct recipient: velocity 6 > 5, bulk-like; nobody knows r6
send("VEL0008", S, { "r6@gmail.com" },
    "spam-risk; rcpts=1; known=0; velocity=6; reasons=velocity,unknown-recipients,no-unsubscribe,no-one-click",
    { class = "spam-risk", velocity = 6,
    reasons = "velocity,unknown-recipients,no-unsubscribe,no-one-click" })
-- to a known recipient: still bulk-like by velocity, no List-Unsubscribe
send("VEL0009", S, { "r1@gmail.com" },
    "spam-risk; rcpts=1; known=1; velocity=6; reasons=velocity,no-unsubscribe,no-one-click",
    { class = "spam-risk", known = 1, reasons = "velocity,no-unsubscribe,no-one-click" })
-- with List-Unsubscribe and one-click: bulk
send("VEL0010", S, { "r1@gmail.com" },
    "bulk; rcpts=1; known=1; velocity=6; reasons=velocity,list-unsubscribe",
    { class = "bulk", reasons = "velocity,list-unsubscribe" },
    { extra = { { "List-Unsubscribe", "<mailto:unsub@example.com>" },
    { "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" } } })

-- another sender has a velocity of its own
send("VEL0011", "w@example.com", { "r1@gmail.com" }, "personal; rcpts=1; known=0; velocity=1",
    { class = "personal", velocity = 1 })

-- several recipients in one message count one each; recipients mailed
-- more than an hour ago do not count
local X = "x@example.com"
local old = { "zadd", C.vel_key(X) }
local t_old = tostring(C.now_ms() - 2 * HOUR_MS)
local t_recent = tostring(C.now_ms() - HOUR_MS / 2)
for i = 1, 10 do
	table.insert(old, t_old)
	table.insert(old, "old" .. i .. "@gmail.com")
end
for i = 1, 2 do
	table.insert(old, t_recent)
	table.insert(old, "recent" .. i .. "@gmail.com")
end
T.redis(table.unpack(old))
send("VEL0012", X, { "n1@gmail.com", "n2@yahoo.com" }, "personal; rcpts=2; known=0; velocity=4",
    { class = "personal", rcpts = 2, velocity = 4 })
-- a recipient mailed more than an hour ago counts again when mailed now
send("VEL0013", X, { "old1@gmail.com" }, "personal; rcpts=1; known=0; velocity=5",
    { class = "personal", velocity = 5 })

-- velocity follows the authenticated user across envelope senders
send("VEL0014", "bounce1@example.com", { "a1@gmail.com" }, "personal; rcpts=1; known=0; velocity=1",
    { class = "personal", velocity = 1 }, { auth = "carol@example.com" })
send("VEL0015", "bounce2@example.com", { "a2@gmail.com" }, "personal; rcpts=1; known=0; velocity=2",
    { class = "personal", velocity = 2 }, { auth = "carol@example.com" })

mt.disconnect(conn)
T.finish()
