#!/bin/sh
# make check: runs the unit and integration tests (both, even when one fails), showing their
# output as it comes, and ends with one line totalling both:
#   check: N passed, N failed, N skipped
# Unit tests count Check's summaries ("100%: Checks: N, Failures: F, Errors: E"); a unit test
# binary that died before its summary counts as one failure. Exit status: make's.
# usage: check_total.sh LOGFILE MAKE-COMMAND...
log=$1; shift
rcfile=$log.rc
{ "$@"; echo $? > "$rcfile"; } 2>&1 | tee "$log"
rc=$(cat "$rcfile" 2>/dev/null || echo 1)
rm -f "$rcfile"
awk -v rc="$rc" '
/^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+$/ {
    gsub(/,/, ""); pass += $3 - $5 - $7; fail += $5 + $7; next }
/^unit: .* before its summary/ { fail++; next }
/^integration: [0-9]+ passed, [0-9]+ failed/ {
    gsub(/,/, ""); pass += $2; fail += $4; if ($6 != "") skip += $6; integ = 1; next }
END {
    if (!integ && rc != 0) note = " (the integration tests did not report: see above)"
    printf "check: %d passed, %d failed, %d skipped%s\n", pass, fail, skip, note
}' "$log"
exit "$rc"
