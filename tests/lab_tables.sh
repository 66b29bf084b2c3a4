#!/bin/sh
# lab_tables.sh: keeps the lab's tables in docs/bptt.md true. Each table there sits between
#     <!-- lab: PROGRAM [FLAGS]: begin -->   and   <!-- lab: PROGRAM [FLAGS]: end -->
# and this script runs `PROGRAM FLAGS --out TMP` afresh (once per command) and checks that the
# block's lines are lines of its output, one after another: the same words, and each number
# within 1 part in 10^3 of the fresh one or one unit of its last printed digit, whichever is
# larger (a last digit can move with the order in which float sums are added). It also checks
# what docs/bptt.md says of the numbers: lab_gradient_norms' non-normal W_h have sigma_max above
# 1 and spectral radius below, the linear cell's factor per step is the spectral radius within
# 5%, and tanh can raise the gradient above the linear cell's; lab_explosion's readout table
# shows the loss growing by the square of 1 - 2 lr (1 + ||h||^2), lr 0.05 unclipped does not
# diverge, and value clipping diverges at +-5 and not at +-1 or below.
# Blocks whose flags hold --long (lab_explosion --long: about 5 s alone, longer on a loaded
# machine), plain lab_copy's (its full sweep: about 20 s on two cores) and every block of
# lab_adding (about two minutes) are checked only with --long:
# `make experiments` passes it, `make check` does not. With --long the script also checks
# every figure in docs/img that a lab program writes (an SVG file of the same name in the
# output of a lab_* program run with its default flags) against a fresh one, byte for byte;
# a figure that no lab writes (tape_rnn3.svg, drawn by draw_tape) is named and skipped.
# --fresh DIR reuses a finished `make experiments`: a lab run with its default flags is not
# run again, but read from DIR/PROGRAM.txt (its output) and DIR (its files).
# Run from the repository root:
#     sh tests/lab_tables.sh BUILD/examples [--long [--fresh DIR]] [DOC]
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

usage() {
    echo "usage: sh tests/lab_tables.sh BUILD/examples [--long [--fresh DIR]] [DOC]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
examples=$1
shift
long=no
fresh=
if [ "${1:-}" = --long ]; then
    long=yes
    shift
    if [ "${1:-}" = --fresh ]; then
        [ $# -ge 2 ] && [ -d "$2" ] || { echo "lab_tables.sh: --fresh needs a directory" >&2; usage; }
        fresh=$2
        shift 2
    fi
fi
[ $# -le 1 ] || usage
doc=${1:-docs/bptt.md}
slow_programs="lab_adding"   # their blocks are checked only with --long
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab_tables.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

# The directory of the files that the command line "PROGRAM FLAGS" wrote (after output_of).
files_of() {
    if [ -n "$fresh" ] && [ -f "$fresh/$1.txt" ]; then
        echo "$fresh"
    else
        echo "$tmp/$(printf '%s' "$1" | tr -c 'A-Za-z0-9_' '_').files"
    fi
}

# The output of a command line "PROGRAM FLAGS", run once (or read from the --fresh directory
# when it is a program alone and that directory has its output): the file's name.
output_of() {
    if [ -n "$fresh" ] && [ -f "$fresh/$1.txt" ]; then
        echo "$fresh/$1.txt"
        return
    fi
    name=$(printf '%s' "$1" | tr -c 'A-Za-z0-9_' '_')
    if [ ! -f "$tmp/$name.out" ]; then
        mkdir -p "$tmp/$name.files"
        # shellcheck disable=SC2086 # the flags are words
        "$examples/"$1 --out "$tmp/$name.files" > "$tmp/$name.out" 2> "$tmp/$name.err" \
            || { echo "$1 failed:"; cat "$tmp/$name.err"; }
    fi
    echo "$tmp/$name.out"
}

# The block's lines (less the code fences) appear in the output, in a row, each number within
# the tolerance above. $1: block, $2: output.
block_in_output() {
    awk 'function number(word) { return match(word, /[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?/) }
         function unit(text,    mantissa, exponent, dot, places) {
             mantissa = text; exponent = 0
             if (match(text, /[eE]/)) { mantissa = substr(text, 1, RSTART - 1); exponent = substr(text, RSTART + 1) + 0 }
             dot = index(mantissa, "."); places = dot ? length(mantissa) - dot : 0
             return 10 ^ (exponent - places)
         }
         function alike(a, b,    x, y, d, m, pa, sa, pb, sb) {
             if (a == b) return 1
             if (!number(a)) return 0
             x = substr(a, RSTART, RLENGTH); pa = substr(a, 1, RSTART - 1); sa = substr(a, RSTART + RLENGTH)
             if (!number(b)) return 0
             y = substr(b, RSTART, RLENGTH); pb = substr(b, 1, RSTART - 1); sb = substr(b, RSTART + RLENGTH)
             if (pa != pb || sa != sb) return 0
             d = x - y; if (d < 0) d = -d
             m = x < 0 ? -x : x; if (y < 0 ? -y > m : y > m) m = y < 0 ? -y : y
             return d <= 1e-3 * m || d <= unit(x) * 1.0001
         }
         function lines_alike(a, b,    k, l, i, wa, wb) {
             k = split(a, wa, " "); l = split(b, wb, " ")
             if (k != l) return 0
             for (i = 1; i <= k; i++) if (!alike(wa[i], wb[i])) return 0
             return 1
         }
         FNR == NR { want[++n] = $0; next }
         { got[++m] = $0 }
         END {
             for (start = 1; start + n - 1 <= m; start++) {
                 ok = 1
                 for (i = 1; ok && i <= n; i++) ok = lines_alike(want[i], got[start + i - 1])
                 if (ok) exit 0
             }
             # the closest start, to say which line differs
             for (start = 1; start <= m; start++) if (lines_alike(want[1], got[start])) break
             for (i = 1; i <= n && start + i - 1 <= m; i++)
                 if (!lines_alike(want[i], got[start + i - 1])) {
                     print "  docs:   " want[i]; print "  output: " got[start + i - 1]; break
                 }
             if (start > m) print "  no output line is like: " want[1]
             exit 1
         }' "$1" "$2"
}

# Every marked block of the doc.
grep -n '^<!-- lab: .*: begin -->$' "$doc" | sed 's/^\([0-9]*\):<!-- lab: \(.*\): begin -->$/\1 \2/' \
    > "$tmp/blocks"
check "$doc marks the lab's tables (<!-- lab: PROGRAM FLAGS: begin -->)" test -s "$tmp/blocks"
while read -r line command; do
    case " $command " in
        *" --long "*|" lab_copy ") slow=yes ;;
        *) slow=no ;;
    esac
    case " $slow_programs " in
        *" ${command%% *} "*) slow=yes ;;
    esac
    if [ "$slow" = yes ] && [ "$long" = no ]; then
        echo "skip $command (line $line): checked by make experiments (--long)"
        continue
    fi
    awk -v from="$line" -v end="<!-- lab: $command: end -->" \
        'NR > from && $0 == end { exit } NR > from && !/^```/ { print }' "$doc" > "$tmp/block"
    check "$doc line $line: the table of '$command' ($(wc -l < "$tmp/block" | tr -d ' ') lines) is what it prints now" \
        block_in_output "$tmp/block" "$(output_of "$command")"
done < "$tmp/blocks"

# What the doc says of lab_gradient_norms' non-normal table.
norms=$(output_of lab_gradient_norms)
nonnormal() {
    awk '/^Non-normal W_h/ { inside = 1 }
         inside && /spectral radius [0-9]/ { n++; s = $0; sub(/.*sigma_max /, "", s); sigma = s + 0
             r = $0; sub(/.*spectral radius /, "", r); radius = r + 0
             if (!(sigma > 1 && radius < 1)) bad++ }
         inside && $1 == "linear" { d = $NF / radius - 1; if (d < 0) d = -d; if (d > 0.05) bad++ }
         inside && $1 == "tanh/linear:" { above = $4 + 0 }
         /^The gated cells/ { inside = 0 }
         END { exit !(n == 2 && bad == 0 && above > 1) }' "$1"
}
check "lab_gradient_norms: non-normal W_h with sigma_max > 1 > spectral radius; the linear cell's factor is the radius; tanh above linear once" \
    nonnormal "$norms"
check "lab_gradient_norms: the gated cells are compared by ||dL/dx_{T-k}||" \
    grep -q '^The gated cells against the RNN: ||dL/dx_{T-k}|| / ||dL/dx_T||' "$norms"

# What the doc says of lab_explosion's tables.
explosion=$(output_of lab_explosion)
readout() {
    awk '$1 == "no" && $2 == "clipping" && $3 == "0.10" { square = $7; growth = $8 }
         $1 == "no" && $3 == "lr" && $4 == "0.05" { lower = $11 }
         END { d = growth / square - 1; if (d < 0) d = -d
               exit !(square > 1 && d < 0.05 && lower == "0") }' "$1"
}
check "lab_explosion: the loss grows by (1 - 2 lr (1 + ||h||^2))^2 per step; lr 0.05 unclipped does not diverge" \
    readout "$explosion"
check "lab_explosion: value clipping at +-5 diverges 5/5" grep -Eq '^value clipping at \+-5 +5/5 ' "$explosion"
check "... at +-1 and below 0/5" test "$(grep -Ec '^value clipping at \+-(1|0\.5|0\.2) +0/5 ' "$explosion")" = 3
check "lab_explosion: the table counts the clipped steps" \
    grep -Eq '^norm clipping at 1 +0/5 .* [0-9.]+%$' "$explosion"
if [ "$long" = yes ]; then
    long_run=$(output_of "lab_explosion --long --seed 2")
    check "lab_explosion --long --seed 2: unclipped overflows, norm-clipped does not" \
        awk '$1 == "no" && $NF ~ /%$/ && $(NF - 2) ~ /^[0-9]+$/ { a = 1 }
             $1 == "norm" && $(NF - 2) == "no" { b = 1 } END { exit !(a && b) }' "$long_run"
fi

# Every figure in docs/img that a lab writes is what a fresh run writes, byte for byte.
same_file() { cmp -s "$1" "$2" || { echo "  $2 differs from $1 (make figures copies it)"; false; }; }
if [ "$long" = yes ]; then
    for program in "$examples"/lab_*; do
        output_of "$(basename "$program")" > /dev/null
    done
    for figure in "$(dirname "$doc")"/img/*.svg; do
        found=
        for program in "$examples"/lab_*; do
            dir=$(files_of "$(basename "$program")")
            if [ -f "$dir/$(basename "$figure")" ]; then found=$dir/$(basename "$figure"); fi
        done
        if [ -z "$found" ]; then
            echo "skip $figure: no lab program writes it"
            continue
        fi
        check "$figure is the fresh one" same_file "$found" "$figure"
    done
fi

summary
