#!/bin/bash
# badinput.sh - the bad-input corpus test (tests/badinput/run.sh: hostile
# addresses, headers and command sequences over the milter protocol and
# through Postfix; no crash, the documented replies, no Redis key outside
# doc/REDIS.md), run as part of the faults suite.
exec bash "$(dirname "$0")/../badinput/run.sh" "$@"
