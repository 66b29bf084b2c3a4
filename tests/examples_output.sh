#!/bin/sh
# examples_output.sh: checks what train_sine and lab_explosion print, as a new user reads it:
# a message on stderr comes after the lines printed before it when both streams go to one
# place (2>&1); a huge loss is printed as 1.2345e+27, not as 30 digits; a one-epoch run does
# not claim "1.0x lower"; and lab_explosion labels the divergences it expects as expected.
# Run from the repository root with the directory of the built examples:
#     sh tests/examples_output.sh build/examples
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh tests/examples_output.sh BUILD/examples" >&2
    exit 2
fi
examples=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/examples_output.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

# The number of the first line of file $1 that matches the pattern $2, or 0.
line_of() {
    awk -v pattern="$2" '$0 ~ pattern { print NR; found = 1; exit } END { if (!found) print 0 }' "$1"
}

# --lr 5 overflows in the second epoch: the first epoch's line, then the message on stderr.
"$examples/train_sine" --lr 5 > "$tmp/lr5.log" 2>&1
status=$?
check "train_sine --lr 5: exit 1" test "$status" = 1
epoch=$(line_of "$tmp/lr5.log" "^epoch +1 ")
diverged=$(line_of "$tmp/lr5.log" "diverged")
epoch_first() { [ "$epoch" -gt 0 ] && [ "$diverged" -gt "$epoch" ]; }
check "... prints the epoch line before \"diverged\" (lines $epoch and $diverged of 2>&1)" epoch_first
check "... prints the huge loss of its first epoch with an exponent (%g)" \
    grep -Eq "^epoch +1  loss [0-9]\.[0-9]*e\+[0-9]+ " "$tmp/lr5.log"
check "... and no number of 10 digits or more" test -z "$(grep -E '[0-9]{10}' "$tmp/lr5.log")"

"$examples/train_sine" --epochs 1 > "$tmp/one.log" 2>&1
status=$?
check "train_sine --epochs 1: exit 0" test "$status" = 0
check "... does not claim \"1.0x lower\"" test -z "$(grep '1\.0x lower' "$tmp/one.log")"
check "... compares its first batch with its last, and says so" \
    grep -q "first batch loss .*last batch loss" "$tmp/one.log"

"$examples/train_sine" --epochs 3 > "$tmp/three.log" 2>&1
check "train_sine --epochs 3: compares the first epoch with the last" \
    grep -Eq "^first epoch loss .*final epoch loss .*: [0-9.]+x lower$" "$tmp/three.log"

"$examples/lab_explosion" --quick --out "$tmp" > /dev/null 2> "$tmp/explosion.err"
status=$?
check "lab_explosion --quick: exit 0" test "$status" = 0
check "... labels its unclipped runs' divergence as expected" \
    grep -q "^lab_explosion: no clipping: 2 of 2 runs diverged (expected: " "$tmp/explosion.err"
check "... and every line on stderr says what the lab expects" \
    test "$(grep -c '(expected: ' "$tmp/explosion.err")" = 3

summary
