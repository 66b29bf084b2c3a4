#!/bin/sh
# seed_cell_backward.sh: checks `seed_cell --backward`, the seed cell's BPTT in numbers. It
# exits 0 and its finite-difference check of dL/dW_h prints a worst relative error below 1e-3;
# with --tolerance 1e-12 the same check fails and the exit status is 1; its h_t are the forward
# run's; the numbers it prints obey the chain rule (dL/dh_T = h_T - y, dL/da_t = (1 - h_t^2)
# dL/dh_t, dL/dh_{t-1} = W_h^T dL/da_t, recomputed here from the printed columns); and the
# excerpt of its output in docs/bptt.md, between the lines "<!-- seed_cell --backward: begin -->"
# and "<!-- seed_cell --backward: end -->", is the start of what it prints now, so that the
# doc's numbers cannot go stale. Run from the repository root:
#     sh tests/seed_cell_backward.sh build/examples/seed_cell [DOC]
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: sh tests/seed_cell_backward.sh PATH/TO/seed_cell [DOC]" >&2
    exit 2
fi
seed_cell=$1
doc=${2:-docs/bptt.md}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/seed_cell_backward.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

"$seed_cell" --backward > "$tmp/out" 2> "$tmp/err"
status=$?
check "--backward exits 0" test "$status" = 0
[ "$status" = 0 ] || cat "$tmp/err"

# The number after "worst relative error" on the finite-difference line, below limit.
error_below() {
    awk -v limit="$2" '/^finite-difference check of dL\/dW_h: worst relative error / {
        found = 1; ok = ($7 + 0 < limit + 0) }
        END { exit !(found && ok) }' "$1"
}
check "the finite-difference check prints a worst relative error below 1e-3" \
    error_below "$tmp/out" 1e-3

"$seed_cell" --backward --tolerance 1e-12 > "$tmp/strict" 2> "$tmp/strict.err"
status=$?
check "--tolerance 1e-12: the same check fails, exit 1" test "$status" = 1
check "... and says FAILED" grep -q "^finite-difference check of dL/dW_h: .*: FAILED$" "$tmp/strict"

"$seed_cell" --tolerance 1e-3 > /dev/null 2> "$tmp/alone.err"
status=$?
check "--tolerance without --backward: exit 2" test "$status" = 2

# The h_t column of --backward (rows t = T..1, 5 digits) against the forward run's "Time step
# t" lines (4 decimals).
"$seed_cell" > "$tmp/forward"
same_h() {
    awk 'FNR == NR { if ($1 == "Time" && $2 == "step") { gsub(/[\[\],]/, "")
                         h1[$3 + 0] = $6; h2[$3 + 0] = $7; n++ } next }
         /^ +t +a_t +h_t / { inside = 1; next }
         inside && NF == 0 { inside = 0 }
         inside && NF == 5 { t = $1; d = $3 - h1[t]; if (d * d > 6e-5 * 6e-5) bad++; rows++ }
         inside && NF == 4 { d = $2 - h2[t]; if (d * d > 6e-5 * 6e-5) bad++ }
         END { exit !(n == 5 && rows == 5 && bad == 0) }' "$1" "$2"
}
check "h_t of --backward are the forward run's h_t" same_h "$tmp/forward" "$tmp/out"

# The chain rule, from the printed numbers: W_h from its two lines, then a_t, h_t, dL/dh_t and
# dL/da_t for each t (two lines each, t = T..1). Each identity holds to the printed digits.
chain_rule() {
    awk 'function near(x, y) { d = x - y; if (d < 0) d = -d
                               m = (x < 0 ? -x : x) > (y < 0 ? -y : y) ? (x < 0 ? -x : x) : (y < 0 ? -y : y)
                               return d <= 2e-5 + 1e-3 * m }
         $1 == "W_h" && NF == 3 { w[1,1] = $2; w[1,2] = $3; wrow = 1; next }
         wrow == 1 { w[2,1] = $1; w[2,2] = $2; wrow = 0; next }
         /^ +t +a_t +h_t / { inside = 1; next }
         inside && NF == 0 { inside = 0 }
         inside && NF == 5 { t = $1; if (T == 0) T = t; h[t,1] = $3; gh[t,1] = $4; ga[t,1] = $5 }
         inside && NF == 4 { h[t,2] = $2; gh[t,2] = $3; ga[t,2] = $4 }
         END {
             if (T != 5) exit 1
             if (!near(gh[T,1], h[T,1] - 0.5) || !near(gh[T,2], h[T,2] + 0.5)) bad++
             for (s = 1; s <= T; s++)
                 for (i = 1; i <= 2; i++)
                     if (!near(ga[s,i], (1 - h[s,i] * h[s,i]) * gh[s,i])) bad++
             for (s = 2; s <= T; s++)
                 for (j = 1; j <= 2; j++)
                     if (!near(gh[s-1,j], w[1,j] * ga[s,1] + w[2,j] * ga[s,2])) bad++
             exit bad != 0
         }' "$1"
}
check "the printed grads obey the chain rule, step by step" chain_rule "$tmp/out"

# The doc's excerpt: the lines between the markers, less the code fence.
sed -n '/^<!-- seed_cell --backward: begin -->$/,/^<!-- seed_cell --backward: end -->$/p' "$doc" \
    | sed '1d;$d' | grep -v '^```' > "$tmp/excerpt"
lines=$(wc -l < "$tmp/excerpt" | tr -d ' ')
head -n "$lines" "$tmp/out" > "$tmp/now"

# The excerpt against the output now, line by line: the words alike, and the first number in
# each word within 1 part in 10^4 (the fast and the reference kernels round float sums in
# their own orders, which moves a last printed digit, e.g. of J_t at a saturated step).
same_excerpt() {
    awk 'function number(word) { return match(word, /[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?/) }
         function alike(a, b,    x, y, d, m) {
             if (a == b) return 1
             if (!number(a)) return 0
             x = substr(a, RSTART, RLENGTH); pa = substr(a, 1, RSTART - 1); sa = substr(a, RSTART + RLENGTH)
             if (!number(b)) return 0
             y = substr(b, RSTART, RLENGTH); pb = substr(b, 1, RSTART - 1); sb = substr(b, RSTART + RLENGTH)
             if (pa != pb || sa != sb) return 0
             d = x - y; if (d < 0) d = -d
             m = x < 0 ? -x : x; if (y < 0 ? -y > m : y > m) m = y < 0 ? -y : y
             return d <= 1e-4 * m
         }
         FNR == NR { want[FNR] = $0; n = FNR; next }
         {
             got = $0; line = want[FNR]; lines++
             k = split(line, a, " "); l = split(got, b, " ")
             ok = (k == l)
             for (i = 1; ok && i <= k; i++) ok = alike(a[i], b[i])
             if (!ok) { print "docs line:   " line; print "output line: " got; bad++ }
         }
         END { if (lines != n) print "the output has " lines + 0 " lines, the excerpt " n
               exit !(n > 0 && lines == n && bad == 0) }' "$1" "$2"
}
check "$doc has an excerpt of seed_cell --backward ($lines lines)" test "$lines" -gt 20
check "... which is what it prints now" same_excerpt "$tmp/excerpt" "$tmp/now"

summary
