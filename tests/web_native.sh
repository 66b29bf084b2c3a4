#!/bin/sh
# web_native.sh: holds the browser lab's C code (examples/web/lab_web.c), run natively by
# print_native, to the native lab programs, which the page is then held to (tests/web_test.js):
# on the kernels the labs use (--kernels best), its gradient-ratio curves equal
# lab_gradient_norms --quick's CSV within 1e-5 relative (tanh RNN at every rho, the gated cells
# and the RNN at PyTorch's init), and the comparison fails for another seed; its seed-cell
# numbers, rounded to 5 digits, are seed_cell --backward's; print_native built with the
# single-thread threads.c (TG_SINGLE_THREAD, as in WebAssembly) prints the same as the pool's
# build; a bad setting gets a message and exit status 1. Run from the repository root:
#     sh tests/web_native.sh BUILD        (BUILD: build, holding web-native/ and examples/)
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh tests/web_native.sh BUILD" >&2
    exit 2
fi
native=$1/web-native/print_native
single=$1/web-native/print_native_single
tmp=$(mktemp -d "${TMPDIR:-/tmp}/web_native.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

"$1/examples/lab_gradient_norms" --quick --out "$tmp" > /dev/null ||
    fail "lab_gradient_norms --quick runs"

# same_curve LABEL PRINT_NATIVE_FLAGS...: the CSV's series LABEL (x, y per row) and
# print_native's lines (k, ratio) have the same k and ratios within 1e-5 relative.
same_curve() {
    label=$1
    shift
    awk -F, -v label="$label" 'index($0, label ",") == 1 || index($0, "\"" label "\",") == 1 {
        print $(NF - 1), $NF }' "$tmp/gradient_norms.csv" > "$tmp/lab"
    "$native" --kernels best "$@" > "$tmp/native" || return 1
    paste -d ' ' "$tmp/lab" "$tmp/native" | awk 'NF != 4 || $1 != $3 { bad = 1 }
        { d = $2 - $4; d = d < 0 ? -d : d; if (d > 1e-5 * ($2 < 0 ? -$2 : $2)) bad = 1 }
        END { exit bad || NR != 100 }'
}

for rho in 0.5 0.9 1.0 1.1 1.5; do
    check "curve of the tanh RNN at rho $rho equals lab_gradient_norms's" \
        same_curve "tanh rho = $rho" --rho "$rho"
done
check "curve of dL/dx, RNN at PyTorch's init, equals lab_gradient_norms's" \
    same_curve "rnn, PyTorch init" --init pytorch --of x
check "curve of dL/dx, LSTM with forget bias 3, equals lab_gradient_norms's" \
    same_curve "lstm, forget bias 3" --cell lstm --forget-bias 3 --of x
check "curve of dL/dx, GRU, equals lab_gradient_norms's" same_curve "gru" --cell gru --of x
if same_curve "tanh rho = 0.9" --rho 0.9 --seed 2; then
    fail "the comparison catches a curve from another seed"
else
    pass "the comparison catches a curve from another seed"
fi

# Rows t = T..1 of seed_cell's table (a_t, h_t, dL/dh_t, dL/da_t, unit 1 then 2) as
# "a1 h1 dh1 da1 a2 h2 dh2 da2" against print_native's rows rounded as seed_cell prints them.
seed_cell_rows() {
    "$1/examples/seed_cell" --backward | awk '/^Going back/ { on = 1; getline; next }
        on && NF == 0 { exit }
        on && NF == 5 { row = $2 " " $3 " " $4 " " $5 }
        on && NF == 4 { print row, $1, $2, $3, $4 }'
}
seed_cell_rows "$1" > "$tmp/seed_cell"
"$native" --kernels best --seed-cell | awk 'NF == 9 && $1 ~ /^[0-9]+$/ {
    printf "%d %#.5g %#.5g %#.5g %#.5g %#.5g %#.5g %#.5g %#.5g\n",
        $1, $2, $4, $6, $8, $3, $5, $7, $9 }' | sort -k1,1nr | cut -d ' ' -f 2- > "$tmp/seed_native"
check "seed-cell numbers are seed_cell --backward's (5 rows of 8)" \
    sh -c '[ "$(wc -l < "$1")" = 5 ] && cmp -s "$1" "$2"' sh "$tmp/seed_cell" "$tmp/seed_native"

for mode in "" "--train --train-steps 30" "--seed-cell"; do
    # shellcheck disable=SC2086 # the mode's flags are meant to split
    "$native" $mode > "$tmp/pool" 2>&1
    pool_status=$?
    "$single" $mode > "$tmp/single" 2>&1
    single_status=$?
    check "the single-thread build prints what the pool's prints (${mode:-curve})" \
        sh -c '[ "$1" = 0 ] && [ "$2" = 0 ] && [ -s "$3" ] && cmp -s "$3" "$4"' \
        sh "$pool_status" "$single_status" "$tmp/pool" "$tmp/single"
done

"$native" --hidden 0 > /dev/null 2> "$tmp/err"
status=$?
check "a bad setting exits 1 with a message naming it" \
    sh -c '[ "$1" = 1 ] && grep -q "hidden must be a whole number from 1 to 128, not 0" "$2"' \
    sh "$status" "$tmp/err"

summary
