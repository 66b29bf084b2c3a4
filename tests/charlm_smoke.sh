#!/bin/sh
# charlm_smoke.sh: an end-to-end check of the charlm example in a few seconds. On a text of
# "hello world" lines it trains each cell (rnn, lstm, gru) briefly and checks that the loss
# falls and that the validation loss is reported, saves a checkpoint (one file), resumes it to
# sample 50 bytes of the training alphabet, and checks the exit status and message of a bad
# flag (2), a missing text (1), a flag that conflicts with the checkpoint (2), and a text with
# bytes outside the checkpoint's vocabulary (1, naming them; --unknown drop or CHAR goes on).
# A run on a held-out text unlike the training text warns that the model learns by heart, and
# a default run ends with a sample. It checks charlm's memory estimate against the tape of a real run
# of each cell, that a run needing more memory than --max-memory or the machine has is refused
# before it starts, with the estimate, and that a --save path that cannot be written fails
# before training. Run from the repository root:
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

. "$(dirname "$0")/support/checks.sh"

awk 'BEGIN { for (i = 0; i < 300; i++) print "hello world" }' > "$tmp/text.txt"
small="--hidden 16 --steps 12 --batch 4 --seed 1"

# The first and last "iter N train X" lines of a log: true when the last loss is below a
# third of the first.
loss_fell() {
    awk '$1 == "iter" && $3 == "train" { if (first == "") first = $4; last = $4 }
         END { exit !(first != "" && last + 0 < first / 3) }' "$1"
}

one_file() { [ -s "$1" ] && [ -z "$(find "$(dirname "$1")" -name "$(basename "$1")?*")" ]; }

# Every report line gives the validation loss in nats/byte and bits/char.
held_out_reported() {
    awk '$1 == "iter" { n++; if ($0 !~ /validation [0-9.]+ nats\/byte \([0-9.]+ bits\/char\)$/) bad++ }
         END { exit !(n > 0 && bad == 0) }' "$1"
}

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
    check "$cell: every report gives the validation loss" held_out_reported "$tmp/$cell.log"
    check "$cell: the checkpoint is one file" one_file "$tmp/$cell.ckpt"
    # shellcheck disable=SC2086
    "$charlm" --resume "$tmp/$cell.ckpt" --cell "$cell" $small --iters 0 --sample 50 \
        > "$tmp/$cell.sample" 2> "$tmp/$cell.sample.err"
    status=$?
    check "$cell: resumes with --iters 0 and exits 0" test "$status" = 0
    check "$cell: samples 50 bytes of the training alphabet" sample_ok "$tmp/$cell.sample"
done

# charlm tries --save's directory with a temporary file before training; none is left.
check "no file is left beside the checkpoints but the checkpoints" \
    test -z "$(find "$tmp" -name '*.ckpt*' ! -name '*.ckpt')"

"$charlm" --resume "$tmp/gru.ckpt" --cell gru --hidden 8 --iters 0 --sample 5 \
    > /dev/null 2> "$tmp/mismatch.err"
status=$?
check "a checkpoint resumed with another --hidden: exit 2" test "$status" = 2
check "... with a message naming the flag, both sizes and the checkpoint" \
    grep -q -- "--hidden 8 conflicts with .*gru.ckpt, which was saved with --hidden 16" \
    "$tmp/mismatch.err"
"$charlm" --resume "$tmp/gru.ckpt" --cell lstm --iters 0 --sample 5 > /dev/null 2> "$tmp/cell.err"
status=$?
check "a checkpoint resumed with another --cell: exit 2" test "$status" = 2
check "... naming both cells" grep -q -- "--cell lstm conflicts with .*--cell gru" "$tmp/cell.err"

# Fine-tuning on a text with bytes the checkpoint's vocabulary lacks: refused with the bytes
# named, then --unknown drop and --unknown CHAR go on.
awk 'BEGIN { for (i = 0; i < 100; i++) print "hello world!?" }' > "$tmp/new.txt"
# shellcheck disable=SC2086
"$charlm" --text "$tmp/new.txt" --resume "$tmp/gru.ckpt" --iters 2 --sample 0 \
    > /dev/null 2> "$tmp/unknown.err"
status=$?
check "a text with bytes outside the vocabulary: exit 1" test "$status" = 1
check "... naming them, how often, and --unknown" \
    grep -q "200 bytes outside the vocabulary.*33 ('!') x100, 63 ('?') x100.*--unknown drop" \
    "$tmp/unknown.err"
for way in drop o; do
    "$charlm" --text "$tmp/new.txt" --resume "$tmp/gru.ckpt" --iters 2 --sample 0 \
        --unknown "$way" > "$tmp/unknown.$way.log" 2> /dev/null
    status=$?
    check "... --unknown $way: trains (exit 0)" test "$status" = 0
    check "... and says what it did with the 200 bytes" \
        grep -q "200 bytes outside the vocabulary" "$tmp/unknown.$way.log"
done
"$charlm" --text "$tmp/new.txt" --resume "$tmp/gru.ckpt" --iters 2 --unknown z \
    > /dev/null 2> "$tmp/unknown.z.err"
status=$?
check "... --unknown with a byte the vocabulary lacks too: exit 1" test "$status" = 1

# Held out: a text unlike the training text. Learning "hello world" lines makes the loss on
# "dlrow olleh" lines rise at some report while the training loss falls: a warning says so.
awk 'BEGIN { for (i = 0; i < 40; i++) print "dlrow olleh" }' > "$tmp/reversed.txt"
# shellcheck disable=SC2086
"$charlm" --text "$tmp/text.txt" --val "$tmp/reversed.txt" $small --iters 200 --sample 0 \
    > "$tmp/val.log" 2> /dev/null
check "a held-out text unlike the training text: a warning that the model learns by heart" \
    grep -q "^warning: the validation loss rose .* while the training loss fell" "$tmp/val.log"
# One warning per run of rises, at its second report: the reports' losses say how many.
expected=$(awk '/^iter/ { train = $4; held = $9
                          if (n && held > last_held && train < last_train) rises++; else rises = 0
                          if (rises == 2) warnings++
                          n++; last_train = train; last_held = held }
                END { print warnings + 0 }' "$tmp/val.log")
check "... once for each run of two or more reports in a row ($expected), not at every rise" \
    test "$(grep -c '^warning: the validation loss rose' "$tmp/val.log")" = "$expected" -a "$expected" -gt 0
check "... and the text line names both texts' sizes" \
    grep -q "3600 bytes to train on, 480 for validation" "$tmp/val.log"

# A default run (no --sample) ends with a sample.
# shellcheck disable=SC2086
"$charlm" --text "$tmp/text.txt" $small --iters 5 > "$tmp/default.log" 2> /dev/null
check "a default run ends with a sample" grep -q "^sample (temperature 0.8):" "$tmp/default.log"

"$charlm" --no-such-flag > /dev/null 2> "$tmp/flag.err"
status=$?
check "an unknown flag: exit 2" test "$status" = 2
check "... with a message naming it" grep -q -- "--no-such-flag" "$tmp/flag.err"

"$charlm" --text "$tmp/missing.txt" --iters 1 > /dev/null 2> "$tmp/missing.err"
status=$?
check "a missing --text file: exit 1" test "$status" = 1
check "... with a message naming it" grep -q "missing.txt" "$tmp/missing.err"

# "N UNIT" (charlm's format_bytes) in bytes.
bytes_of() {
    awk -v n="$1" -v unit="$2" 'BEGIN {
        split("bytes KiB MiB GiB TiB PiB", units, " ")
        for (i = 1; i <= 6; i++) if (units[i] == unit) { printf "%.0f\n", n * 1024 ^ (i - 1); exit }
        print -1 }'
}

# The tape's estimate in the model line ("memory about X U, Y U of it the tape") and what
# the tape held at the end ("the tape held Z U"), in bytes: "ESTIMATE HELD", or nothing.
tape_sizes() {
    estimate=$(sed -n 's/.*memory about [0-9.]* [A-Za-z]*, \([0-9.]*\) \([A-Za-z]*\) of it the tape$/\1 \2/p' "$1")
    held=$(sed -n 's/.*the tape held \([0-9.]*\) \([A-Za-z]*\)$/\1 \2/p' "$1")
    [ -n "$estimate" ] && [ -n "$held" ] || return 0
    # shellcheck disable=SC2086  # "N UNIT" is two arguments
    echo "$(bytes_of $estimate) $(bytes_of $held)"
}

# The tape's chunks double, so it holds from what one chunk uses up to twice that: the
# estimate must lie in [held / 2, held], give or take 5% for the rounding of the printed
# numbers. Sizes large enough (hundreds of KiB) that the first 64 KiB chunk does not dominate.
for cell in rnn lstm gru; do
    "$charlm" --text "$tmp/text.txt" --cell "$cell" --hidden 64 --steps 16 --batch 16 --iters 2 \
        > "$tmp/$cell.memory.log" 2> /dev/null
    sizes=$(tape_sizes "$tmp/$cell.memory.log")
    echo "$cell: tape estimate and held, bytes: ${sizes:-none printed}"
    # shellcheck disable=SC2086  # two numbers
    check "$cell: the tape's estimate is within a factor of 2 of what a real run's tape holds" \
        awk -v e="${sizes% *}" -v h="${sizes#* }" \
        'BEGIN { exit !(e > 0 && h > 0 && e <= 1.05 * h && 2 * e >= 0.95 * h) }'
done

# The run from the issue (about 24 GiB of tape) under a cap: refused at once, with the
# estimate and the cap in the message, before any training.
start=$(date +%s)
"$charlm" --text "$tmp/text.txt" --steps 1000 --batch 1024 --max-memory 2G \
    > "$tmp/capped.log" 2> "$tmp/capped.err"
status=$?
check "a run over --max-memory: exit 1" test "$status" = 1
check "... within 5 seconds" test $(($(date +%s) - start)) -le 5
check "... with the estimate in GiB and the cap in the message" \
    grep -q "needs about [0-9.]* GiB.*more than --max-memory 2.00 GiB" "$tmp/capped.err"
check "... and no training" test -z "$(grep '^iter' "$tmp/capped.log")"

# A run far beyond any test machine (about 180 GiB), with no cap: refused against what the
# machine has. Under ulimit -v 4 GiB, so that a build that does not refuse fails quickly
# instead of taking the machine's memory; a sanitizer build cannot start under that limit
# (its shadow memory), and skips this check.
# shellcheck disable=SC3045  # dash and bash have ulimit -v; a shell without it skips
if (ulimit -v 4194304 && "$charlm" --help > /dev/null 2>&1); then
    # shellcheck disable=SC3045
    (ulimit -v 4194304 && exec "$charlm" --text "$tmp/text.txt" --hidden 1024 --steps 1000 \
        --batch 1024 > "$tmp/machine.log" 2> "$tmp/machine.err")
    status=$?
    check "a run needing more memory than the machine has: exit 1" test "$status" = 1
    check "... with the estimate and the machine's memory in the message" \
        grep -q "needs about [0-9.]* GiB.*this machine" "$tmp/machine.err"
else
    echo "skip a run needing more memory than the machine has (cannot run under ulimit -v)"
fi

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

sh "$(dirname "$0")/charlm_resume.sh" "$charlm" || fail "tests/charlm_resume.sh"
summary
