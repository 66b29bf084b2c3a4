#!/bin/sh
# charlm_smoke.sh: an end-to-end check of the charlm example in a few seconds. On a text of
# "hello world" lines it trains each cell (rnn, lstm, gru) briefly and checks that the loss
# falls, saves a checkpoint, resumes it to sample 50 bytes of the training alphabet, and checks
# the exit status and message of a bad flag (2), a missing text (1) and a checkpoint resumed
# with the wrong sizes (1). It checks that a --save path that cannot be written fails before
# training. Run from the repository root:
#     sh tests/charlm_smoke.sh build/examples/charlm
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh tests/charlm_smoke.sh PATH/TO/charlm" >&2
    exit 2
fi
charlm=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/charlm_smoke.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { # check DESCRIPTION COMMAND...: pass when the command succeeds
    description=$1
    shift
    if "$@"; then pass "$description"; else fail "$description"; fi
}

awk 'BEGIN { for (i = 0; i < 300; i++) print "hello world" }' > "$tmp/text.txt"
small="--hidden 16 --steps 12 --batch 4 --seed 1"

# The first and last "iter N loss X" lines of a log: true when the last loss is below a
# third of the first.
loss_fell() {
    awk '$1 == "iter" && $3 == "loss" { if (first == "") first = $4; last = $4 }
         END { exit !(first != "" && last + 0 < first / 3) }' "$1"
}

two_files() { [ -s "$1" ] && [ -s "$2" ]; }

# 50 sampled bytes, the newline after them, and nothing outside the training alphabet.
sample_ok() {
    [ "$(wc -c < "$1" | tr -d ' ')" = 51 ] && [ -z "$(tr -d 'helo wrd\n' < "$1")" ]
}

for cell in rnn lstm gru; do
    # shellcheck disable=SC2086  # $small is a list of flags
    if "$charlm" --text "$tmp/text.txt" --cell "$cell" $small --iters 300 \
        --save "$tmp/$cell.ckpt" > "$tmp/$cell.log" 2> "$tmp/$cell.err"; then
        pass "$cell: trains and saves"
    else
        fail "$cell: trains and saves (exit $?)"
        cat "$tmp/$cell.err"
    fi
    check "$cell: the last printed loss is below a third of the first" loss_fell "$tmp/$cell.log"
    check "$cell: the checkpoint is two files" two_files "$tmp/$cell.ckpt" "$tmp/$cell.ckpt.readout"
    # shellcheck disable=SC2086
    "$charlm" --resume "$tmp/$cell.ckpt" --cell "$cell" $small --iters 0 --sample 50 \
        > "$tmp/$cell.sample" 2> "$tmp/$cell.sample.err"
    status=$?
    check "$cell: resumes with --iters 0 and exits 0" test "$status" = 0
    check "$cell: samples 50 bytes of the training alphabet" sample_ok "$tmp/$cell.sample"
done

# charlm tries --save's directory with a temporary file before training; none is left.
check "no file is left beside the checkpoints but the checkpoints" \
    test -z "$(find "$tmp" -name '*.ckpt*' ! -name '*.ckpt' ! -name '*.ckpt.readout')"

"$charlm" --resume "$tmp/gru.ckpt" --cell gru --hidden 8 --iters 0 --sample 5 \
    > /dev/null 2> "$tmp/mismatch.err"
status=$?
check "a checkpoint resumed with another --hidden: exit 1" test "$status" = 1
check "... with a message naming the checkpoint" grep -q "gru.ckpt" "$tmp/mismatch.err"

"$charlm" --no-such-flag > /dev/null 2> "$tmp/flag.err"
status=$?
check "an unknown flag: exit 2" test "$status" = 2
check "... with a message naming it" grep -q -- "--no-such-flag" "$tmp/flag.err"

"$charlm" --text "$tmp/missing.txt" --iters 1 > /dev/null 2> "$tmp/missing.err"
status=$?
check "a missing --text file: exit 1" test "$status" = 1
check "... with a message naming it" grep -q "missing.txt" "$tmp/missing.err"

# A --save path that cannot be written fails before training (the first checkpoint would be
# written after 10% of the run), naming the path and the reason.
# shellcheck disable=SC2086
"$charlm" --text "$tmp/text.txt" $small --iters 100000 --save "$tmp/no/such/dir/model.ckpt" \
    > "$tmp/save.log" 2> "$tmp/save.err"
status=$?
check "a --save path in a missing directory: exit 1" test "$status" = 1
check "... with the path and the reason in the message" \
    grep -q "no/such/dir/model.ckpt.*No such file or directory" "$tmp/save.err"
check "... before training" test -z "$(grep '^iter' "$tmp/save.log")"
mkdir "$tmp/dir.ckpt"
# shellcheck disable=SC2086
"$charlm" --text "$tmp/text.txt" $small --iters 100000 --save "$tmp/dir.ckpt" \
    > "$tmp/savedir.log" 2> "$tmp/savedir.err"
status=$?
check "a --save path that is a directory: exit 1" test "$status" = 1
check "... saying so" grep -q "dir.ckpt: it is a directory" "$tmp/savedir.err"
check "... before training" test -z "$(grep '^iter' "$tmp/savedir.log")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
