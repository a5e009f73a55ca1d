#!/bin/sh
# Fails when a core file (src/ outside the pg_ protocol module) holds a SQLSTATE
# literal: the core names its errors by kind (src/errors.h) and a protocol module
# picks the code. A SQLSTATE is five characters of 0-9/A-Z with at least one digit
# (so "PAUSE" or "STATS" do not count).
# usage: contrib/check-core-sqlstate.sh [src-dir]
dir=${1:-src}
rc=0
for f in "$dir"/*.c "$dir"/*.h; do
	case ${f##*/} in pg_* | pg.h) continue ;; esac
	if grep -nHoE '"[0-9A-Z]{5}"' "$f" | grep -E ':"[A-Z]*[0-9][0-9A-Z]*"$'; then
		rc=1
	fi
done
[ $rc -eq 0 ] || echo "SQLSTATE literals in core files (use an enum err_kind, src/errors.h)" >&2
exit $rc
