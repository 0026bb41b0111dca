#!/usr/bin/env python3
"""cluster-slots.py - read a `redis-cli MONITOR` capture and check that
every command naming more than one key names keys of one Redis Cluster hash
slot, and that each key of such a command carries a non-empty {hash tag}.
Keys inside scripts (the "[N lua]" lines that follow an EVALSHA) must be
in the slot of the script's KEYS. A command this table does not know fails:
a new command must be classified here before it can pass.

Usage: cluster-slots.py MONITOR_FILE [SOURCE_PREFIX]
  --selftest          check the CRC16 and the rules on made-up lines
  --keys FILE         write "SLOT KEY" for every distinct key seen to FILE
Prints "ok - ..." / "not ok - ..." lines and a summary; exit 0 always
(the shell counts the lines).
"""
import re
import sys
from collections import Counter


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM): poly 0x1021, init 0, as Redis Cluster uses."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def hash_tag(key: bytes):
    """the part hashed: between the first { and the next } if non-empty"""
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            return key[s + 1:e]
    return None


def slot(key: bytes) -> int:
    t = hash_tag(key)
    return crc16(t if t is not None else key) % 16384


# commands and where their keys are
KEYLESS = {"PING", "SCRIPT", "SELECT", "AUTH", "HELLO", "CLIENT", "INFO", "SCAN",
           "DEBUG", "MONITOR", "CONFIG", "TIME", "COMMAND", "QUIT", "ECHO", "DBSIZE",
           "FLUSHALL", "FLUSHDB", "ACL"}
FIRST = {"GET", "SET", "ZADD", "ZREM", "ZCOUNT", "ZSCORE", "ZCARD", "ZRANGE",
         "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZREMRANGEBYSCORE",
         "ZREMRANGEBYRANK", "ZINCRBY", "PEXPIRE", "EXPIRE", "TTL", "PTTL", "HINCRBY",
         "HGETALL", "HGET", "HSET", "XADD", "XLEN", "XREVRANGE", "XRANGE", "TYPE"}
ALL = {"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH"}


def keys_of(cmd, args):
    """list of keys, None for a keyless command; raises KeyError if unknown"""
    c = cmd.upper()
    if c in KEYLESS:
        return None
    if c in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL"):
        n = int(args[1])
        return args[2:2 + n]
    if c in ALL:
        return args
    if c == "XREAD":
        i = [a.upper() for a in args].index(b"STREAMS")
        rest = args[i + 1:]
        return rest[:len(rest) // 2]
    if c in FIRST:
        return args[:1]
    raise KeyError(c)


LINE = re.compile(rb'^(\d+\.\d+) \[(\d+) ([^\]]+)\] (.*)$')
ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')


def unescape(b: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(b):
        if b[i] == 0x5C and i + 1 < len(b):  # backslash
            n = b[i + 1]
            if n == ord("x") and i + 3 < len(b):
                out.append(int(b[i + 2:i + 4], 16))
                i += 4
                continue
            out.append({ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("a"): 7,
                        ord("b"): 8}.get(n, n))
            i += 2
            continue
        out.append(b[i])
        i += 1
    return bytes(out)


def check(lines, src_filter=None):
    """returns (stats Counter, problems list, all keys set)"""
    st = Counter()
    problems = []
    keys_seen = set()
    script_slot = None
    for raw in lines:
        m = LINE.match(raw.rstrip(b"\r\n"))
        if not m:
            continue
        source = m.group(3)
        args = [unescape(a) for a in ARG.findall(m.group(4))]
        if not args:
            continue
        cmd = args[0].decode("ascii", "replace")
        lua = source == b"lua"
        if not lua and src_filter is not None and not source.startswith(src_filter):
            continue
        try:
            ks = keys_of(cmd, args[1:])
        except (KeyError, ValueError, IndexError):
            problems.append("command not classified: %s" % raw.decode("utf-8", "replace").strip())
            continue
        if lua:
            st["script inner command"] += 1
            for k in ks or []:
                keys_seen.add(k)
                if script_slot is None or slot(k) != script_slot:
                    problems.append("inside a script, %s touches %r (slot %d) outside the "
                                    "script's slot %s" % (cmd, k, slot(k), script_slot))
            continue
        script_slot = None
        if ks is None:
            continue
        for k in ks:
            keys_seen.add(k)
        st["command " + cmd.upper()] += 1
        if cmd.upper() in ("EVALSHA", "EVAL"):
            st["script call with %d keys" % len(ks)] += 1
            if ks:
                script_slot = slot(ks[0])
        if len(ks) < 2 and cmd.upper() not in ("EVALSHA", "EVAL"):
            continue
        st["multi-key call"] += 1
        for k in ks:
            if hash_tag(k) is None:
                problems.append("%s key without a {hash tag}: %r" % (cmd, k))
        slots = {slot(k) for k in ks}
        if len(slots) > 1:
            problems.append("%s keys in %d slots: %s" % (cmd, len(slots),
                            ", ".join("%r=%d" % (k, slot(k)) for k in ks)))
    return st, problems, keys_seen


def selftest():
    ok = True

    def t(cond, name):
        nonlocal ok
        print(("ok - " if cond else "not ok - ") + "selftest: " + name)
        ok = ok and cond

    t(crc16(b"123456789") == 0x31C3, "CRC16/XMODEM check value of 123456789 is 0x31C3")
    t(slot(b"{user1000}.following") == slot(b"{user1000}.followers"), "same tag, same slot")
    t(slot(b"foo{}{bar}") == crc16(b"foo{}{bar}") % 16384, "empty tag: whole key hashed")
    t(slot(b"foo{{bar}}zap") == crc16(b"{bar") % 16384, "tag is {bar for foo{{bar}}zap")
    t(slot(b"foo{bar}{zap}") == crc16(b"bar") % 16384, "first tag only")
    good = [b'1.0 [0 unix:/s] "EVALSHA" "abc" "2" "obm:{google}:w:r:a" "obm:{google}:p:r:a" "0"',
            b'1.1 [0 lua] "ZADD" "obm:{google}:w:r:a" "1" "m"']
    st, pr, _ = check(good)
    t(not pr and st["multi-key call"] == 1, "a two-key EVALSHA of one tag passes")
    for name, line in (
        ("untagged key", b'1.0 [0 unix:/s] "EVALSHA" "abc" "2" "obm:{google}:w:r:a" "obm:google:p:r:a" "0"'),
        ("two tags", b'1.0 [0 unix:/s] "EVALSHA" "abc" "2" "obm:{google}:w:r:a" "obm:{yahoo}:p:r:a" "0"'),
        ("DEL of two tags", b'1.0 [0 unix:/s] "DEL" "obm:{a}:x" "obm:{b}:x"'),
        ("unknown command", b'1.0 [0 unix:/s] "SUNIONSTORE" "obm:{a}:x" "obm:{a}:y"'),
    ):
        _, pr, _ = check([line])
        t(len(pr) > 0, "%s fails the check" % name)
    _, pr, _ = check([good[0], b'1.1 [0 lua] "ZADD" "obm:{yahoo}:w:r:a" "1" "m"'])
    t(len(pr) > 0, "a script touching another slot fails the check")
    # the same tag through two untagged-looking keys that collide is still refused
    _, pr, _ = check([b'1.0 [0 unix:/s] "DEL" "obm:nokey" "obm:nokey"'])
    t(len(pr) > 0, "untagged keys fail even when their slots are equal")
    return ok


def main():
    if sys.argv[1:2] == ["--selftest"]:
        selftest()
        return
    path = sys.argv[1]
    src = sys.argv[2].encode() if len(sys.argv) > 2 and sys.argv[2] else None
    keys_out = None
    if "--keys" in sys.argv:
        keys_out = sys.argv[sys.argv.index("--keys") + 1]
    with open(path, "rb") as f:
        lines = f.readlines()
    st, problems, keys_seen = check(lines, src)
    for k, v in sorted(st.items()):
        print("# %s: %d" % (k, v))
    for p in problems[:40]:
        print("# PROBLEM: " + p)
    print(("ok - " if not problems else "not ok - ") +
          "every multi-key command keeps its keys in one slot, each key tagged (%d problems)"
          % len(problems))
    print("STAT multi=%d evalsha=%d inner=%d problems=%d" % (
        st["multi-key call"], st["command EVALSHA"], st["script inner command"], len(problems)))
    if keys_out:
        with open(keys_out, "wb") as f:
            for k in sorted(keys_seen):
                f.write(b"%d " % slot(k) + k + b"\n")


if __name__ == "__main__":
    main()
