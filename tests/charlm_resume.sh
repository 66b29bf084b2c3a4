#!/bin/sh
# charlm_resume.sh: charlm's --resume continues a run exactly. For each cell (rnn, lstm, gru,
# two layers) and optimizer (sgd, adam) it trains 2N iterations in one run, and N iterations
# saved to a checkpoint then N more resumed from it with --resume alone (no --cell, --hidden,
# --layers, --batch or --optimizer: they come from the file), and compares the printed report
# lines of the two with cmp: the training and validation losses, printed with 9 significant
# digits (a float's exact value) for every iteration, must be the same bit for bit, the
# iteration numbers too. Run from the repository root:
#     sh tests/charlm_resume.sh build/examples/charlm
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh tests/charlm_resume.sh PATH/TO/charlm" >&2
    exit 2
fi
charlm=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/charlm_resume.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

awk 'BEGIN { for (i = 0; i < 100; i++) print "the cat sat on the mat " i }' > "$tmp/text.txt"
N=3
run="--text $tmp/text.txt --sample 0"
model="--layers 2 --hidden 12 --steps 10 --batch 3 --seed 7"

for cell in rnn lstm gru; do
    for optimizer in sgd adam; do
        name="$cell-$optimizer"
        # shellcheck disable=SC2086  # $run and $model are lists of flags
        "$charlm" $run $model --cell "$cell" --optimizer "$optimizer" --iters $((2 * N)) \
            2> "$tmp/$name.err" | grep '^iter' > "$tmp/$name.whole"
        # shellcheck disable=SC2086
        "$charlm" $run $model --cell "$cell" --optimizer "$optimizer" --iters "$N" \
            --save "$tmp/$name.ckpt" 2>> "$tmp/$name.err" | grep '^iter' > "$tmp/$name.parts"
        # shellcheck disable=SC2086
        "$charlm" $run --resume "$tmp/$name.ckpt" --iters "$N" \
            2>> "$tmp/$name.err" | grep '^iter' >> "$tmp/$name.parts"
        check "$name: the run of 2N iterations reports each of them" \
            test "$(wc -l < "$tmp/$name.whole" | tr -d ' ')" = $((2 * N))
        if cmp -s "$tmp/$name.whole" "$tmp/$name.parts"; then
            pass "$name: N + resume + N prints the same losses as 2N, bit for bit"
        else
            fail "$name: N + resume + N prints the same losses as 2N, bit for bit"
            diff "$tmp/$name.whole" "$tmp/$name.parts"
            cat "$tmp/$name.err"
        fi
    done
done

# The comparison can fail: a resume that restarts the optimizer (a checkpoint written with
# --iters 0 holds no optimizer state, streams nor iteration count) does not continue the run.
# shellcheck disable=SC2086
"$charlm" --resume "$tmp/gru-adam.ckpt" --iters 0 --sample 0 --save "$tmp/bare.ckpt" \
    > /dev/null 2> "$tmp/bare.err"
check "--resume with --iters 0 and --save says that the optimizer state is not kept" \
    grep -q "not its optimizer state, streams or iteration count" "$tmp/bare.err"
# shellcheck disable=SC2086
"$charlm" $run --resume "$tmp/bare.ckpt" --iters "$N" 2> /dev/null | grep '^iter' \
    > "$tmp/bare.parts"
losses() { sed -n "${2}p" "$1" | sed 's/^iter *[0-9]*//'; }   # line $2 without its number
check "a resume from a checkpoint without the optimizer's state prints other losses" \
    test -n "$(losses "$tmp/bare.parts" 1)" -a "$(losses "$tmp/bare.parts" 1)" != "$(losses "$tmp/gru-adam.whole" 4)"

summary
