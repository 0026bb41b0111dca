#!/bin/bash
# exempt-domain.sh - milter protocol: the bare-domain form of
# exempt_senders ("example.com", no @) at match time, on the real daemon.
# With burst = 2, an identity in example.com (an authenticated login, or
# the envelope sender of unauthenticated mail from outbound_networks) and
# in a subdomain of it (documented: "a domain entry matches the domain and
# its subdomains") passes 4 Gmail recipients and leaves no rate window;
# lookalikes (example.com.evil, notexample.com, example.co) and a user
# who only writes an example.com address into MAIL FROM are limited: the
# 3rd recipient gets a reply code and their window holds 2 units.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init exempt-domain

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_EXEMPT_SENDERS='"example.com"'
MC_BURST=2
milter_std_conf >"$T/m.conf"
t_file_like "the configuration lists the bare domain" "$T/m.conf" '^exempt_senders = \{"example.com"\}$'
milter_start m "$T/m.conf" "$MC_SOCKET"

mt_run exempt-domain "$OBM_SRCDIR/tests/milter/exempt-domain.lua" "sock=$MC_SOCKET" \
	"mlog=$(milter_log m)"

milter_stop m
t_done
