#!/bin/sh
# embed.sh OUT.c FILE.lua... - turn Lua scripts into C strings:
# milter/lua/NAME.lua becomes `const char lua_NAME[]`.
set -eu
out=$1; shift
{
	echo "/* generated from milter/lua by embed.sh; do not edit */"
	for f in "$@"; do
		name=$(basename "$f" .lua)
		echo "const char lua_${name}[] ="
		sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' -e 's/$/\\n"/' "$f"
		echo "\t;"
	done
} >"$out.tmp"
mv "$out.tmp" "$out"
