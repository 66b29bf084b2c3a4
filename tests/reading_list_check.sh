#!/bin/sh
# reading_list_check.sh: checks docs/architecture.md's reading list, the table under the
# heading "## Read these files first" whose rows are "| N | `PATH` | LINES | ... |": every
# PATH exists, LINES is its line count today, and the counts add up to at most the limit
# (1600 by default), so that the core a reader meets first stays small and its figures true.
#
#   usage: tests/reading_list_check.sh [DOC [LIMIT]]    (run from the repository root)
#
# Prints each mismatch, then "N passed, N failed"; exits 1 when a check failed, 2 when DOC
# cannot be read or holds no reading list.
set -u

doc=${1:-docs/architecture.md}
limit=${2:-1600}
if [ ! -r "$doc" ]; then
    echo "reading_list_check: cannot read $doc" >&2
    echo "0 passed, 0 failed"
    exit 2
fi

# One "PATH LINES" line per row of the table that follows the heading.
rows=$(awk '
    /^## / { inside = ($0 ~ /^## Read these files first/); next }
    inside && /^\| *[0-9]+ *\|/ {
        n = split($0, cell, "|")
        path = cell[3]; lines = cell[4]
        gsub(/[ `]/, "", path); gsub(/ /, "", lines)
        print path, lines
    }
' "$doc")
if [ -z "$rows" ]; then
    echo "reading_list_check: $doc has no reading list (a table under \"## Read these files first\")" >&2
    echo "0 passed, 0 failed"
    exit 2
fi

passed=0
failed=0
total=0
while read -r path lines; do
    if [ ! -r "$path" ]; then
        echo "$doc: the reading list names $path, which does not exist"
        failed=$((failed + 1))
        continue
    fi
    actual=$(wc -l < "$path" | tr -d ' ')
    total=$((total + actual))
    if [ "$actual" = "$lines" ]; then
        passed=$((passed + 1))
    else
        echo "$doc: the reading list gives $path $lines lines; it has $actual"
        failed=$((failed + 1))
    fi
done <<ROWS
$rows
ROWS

if [ "$total" -le "$limit" ]; then
    passed=$((passed + 1))
else
    echo "$doc: the reading list's files total $total lines, over the limit of $limit"
    failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
