#!/bin/sh
# lab_truncated.sh: checks what lab_truncated writes, on a --quick run: the Markdown table has
# its header and one row of 7 cells per task, T and window; in it and in the CSV (one line per
# run), the run with k = T has exactly the test MSE of plain full BPTT, seed by seed; the
# chart is written; and the table in docs/bptt.md, between "<!-- lab_truncated: begin -->"
# and "<!-- lab_truncated: end -->" (from a full run, which make check does not repeat), has
# the full run's 22 rows, its k = T rows equal to its full-BPTT rows. Run from the repository
# root:
#     sh tests/lab_truncated.sh build/examples/lab_truncated [DOC]
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: sh tests/lab_truncated.sh PATH/TO/lab_truncated [DOC]" >&2
    exit 2
fi
lab=$1
doc=${2:-docs/bptt.md}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab_truncated.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

"$lab" --quick --out "$tmp" > "$tmp/out" 2> "$tmp/err"
status=$?
check "--quick exits 0" test "$status" = 0
[ "$status" = 0 ] || cat "$tmp/err"
check "... writes truncated.svg" test -s "$tmp/truncated.svg"

# Markdown table rows ("| ... |" lines after the header and its separator) with $2 cells
# each, $3 of them; and in every task and T, the "(= T)" row's cells after k equal the
# "full BPTT" row's. $1: a file holding the table alone.
table_ok() {
    awk -v cells="$2" -v rows="$3" -F '|' '
        NR == 1 { if ($0 !~ /^\| task \| T \| k \|/) bad++; next }
        NR == 2 { next }
        { if (NF != cells + 2) bad++
          key = $2 "|" $3; rest = ""; for (i = 5; i <= NF; i++) rest = rest "|" $i
          if ($4 ~ /full BPTT/) full[key] = rest
          else if ($4 ~ /\(= T\)/) { equal[key] = (rest == full[key]); ts++ }
          n++ }
        END { for (key in equal) if (!equal[key]) bad++
              exit !(bad == 0 && n == rows && ts > 0) }' "$1"
}
check "truncated.md: a header and 10 rows of 7 cells; k = T rows equal full BPTT's" \
    table_ok "$tmp/truncated.md" 7 10

# The CSV: for each task, T and seed, the test MSE (column 11) of window T equals window 0's.
csv_ok() {
    awk -F ',' 'NR == 1 { if ($1 != "task" || $11 != "test_mse") bad++; next }
                { key = $1 "," $2 "," $4; n++
                  if ($3 == 0) full[key] = $11; else if ($3 == $2) whole[key] = $11 }
                END { for (key in full) { if (!(key in whole) || whole[key] != full[key]) bad++; m++ }
                      exit !(bad == 0 && n == 20 && m == 4) }' "$1"
}
check "truncated.csv: 20 runs; k = T has full BPTT's test MSE, digit for digit, seed by seed" \
    csv_ok "$tmp/truncated.csv"

sed -n '/^<!-- lab_truncated: begin -->$/,/^<!-- lab_truncated: end -->$/p' "$doc" \
    | grep '^|' > "$tmp/doc_table"
check "$doc: the full run's table, 22 rows of 7 cells; k = T rows equal full BPTT's" \
    table_ok "$tmp/doc_table" 7 22

"$lab" --help > "$tmp/help" 2>&1
check "--help exits 0 and prints usage" test "$?" = 0 -a -n "$(grep '^usage: lab_truncated' "$tmp/help")"
"$lab" --frobnicate > /dev/null 2>&1
check "an unknown flag exits 2" test "$?" = 2

summary
