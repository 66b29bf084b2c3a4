#!/bin/sh
# exercises_check.sh: the exercises at the end of docs/bptt.md stay right. Every line
# "Run: `COMMAND`" of the section "## Exercises" is run (its "build/" read as BUILD/, in a
# scratch directory holding results/, where the labs write by default), and the
# answer the exercise gives is checked against the output by this script's check for that
# command; a command this script has no check for fails, and so does a check whose command the
# section no longer holds. Run from the repository root:
#     sh tests/exercises_check.sh BUILD [DOC]
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: sh tests/exercises_check.sh BUILD [DOC]" >&2
    exit 2
fi
build=$1
doc=${2:-docs/bptt.md}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/exercises_check.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

# ---- the answers, one function per command; $1: the command's output ----------------------

# Exercises 1 and 2: in the table "Going back from the loss" (two rows per t: t, a, h, dL/dh,
# dL/da, then a, h, dL/dh, dL/da) and W_h above it, dL/dh_5 = h_5 - y, dL/da = dL/dh (1 - h^2) and
# dL/dh_{t-1} = W_h^T dL/da_t, each to the printed digits (5 significant: 1e-4 relative, or
# 2e-5 absolute near 0).
seed_cell_answers() {
    awk 'function close_to(x, y,    diff, m) { diff = x - y; if (diff < 0) diff = -diff
                                           m = y < 0 ? -y : y; return diff <= 1e-4 * m || diff <= 2e-5 }
         $1 == "W_h" && NF == 3 { W[1, 1] = $2; W[1, 2] = $3; getline; W[2, 1] = $1; W[2, 2] = $2 }
         /^Going back from the loss/ { inside = 1; getline; next }
         inside && NF == 0 { inside = 0 }
         inside && NF == 5 { t = $1; h[t, 1] = $3; g[t, 1] = $4; da[t, 1] = $5; n++; next }
         inside && NF == 4 { h[t, 2] = $2; g[t, 2] = $3; da[t, 2] = $4 }
         END {
             if (n != 5 || !((1, 1) in W)) { print "no table of 5 steps and W_h"; exit 1 }
             if (!close_to(g[5, 1], h[5, 1] - 0.5) || !close_to(g[5, 2], h[5, 2] + 0.5)) { print "dL/dh_5 != h_5 - y"; exit 1 }
             for (t = 1; t <= 5; t++) for (i = 1; i <= 2; i++)
                 if (!close_to(da[t, i], g[t, i] * (1 - h[t, i] * h[t, i]))) { print "dL/da_" t " != dL/dh (1 - h^2)"; exit 1 }
             for (t = 2; t <= 5; t++) for (j = 1; j <= 2; j++)
                 if (!close_to(g[t - 1, j], W[1, j] * da[t, 1] + W[2, j] * da[t, 2])) { print "dL/dh_" t - 1 " != W_h^T dL/da_" t; exit 1 }
             if (!close_to(g[5, 1], -0.16865) || !close_to(g[4, 1], -0.28507) || !close_to(g[4, 2], -0.14845)) { print "not the numbers of the exercises"; exit 1 }
         }' "$1"
}

# Exercise 3: at rho = 0.8 the linear cell's ratio is 0.8^k (k = 10, 50) and holds; the tanh
# cell's check holds and it is below 0.8^10 at k = 10.
rho_08_answers() {
    awk '$1 == "0.8" && $2 == "rho^k" { inside = 1; next }
         inside && $1 == "tanh" { tanh10 = $3; tanh_holds = $NF == "holds" }
         inside && $1 == "linear" { l10 = $3; l50 = $5; linear_holds = $NF == "holds"; inside = 0 }
         function near(x, want,    diff) { diff = x / want - 1; if (diff < 0) diff = -diff; return diff < 1e-3 }
         END { exit !(near(l10, 0.8 ^ 10) && near(l50, 0.8 ^ 50) && linear_holds && tanh_holds \
                      && tanh10 < 0.8 ^ 10 && tanh10 > 0.05 && tanh10 < 0.065) }' "$1"
}

# Exercise 4: the LSTM's per-step factor grows with its forget bias; the GRU's is nearest to
# forget bias 0's; each is the stated one to 0.002.
forget_bias_answers() {
    awk '/^lstm, forget bias 0 / { b0 = $NF } /^lstm, forget bias 1 / { b1 = $NF }
         /^lstm, forget bias 3 / { b3 = $NF } /^gru / { gru = $NF }
         function dist(x, y) { return x > y ? x - y : y - x }
         END { exit !(b0 > 0 && b0 < b1 && b1 < b3 && dist(gru, b0) < dist(gru, b1) \
                      && dist(b0, 0.637) < 0.002 && dist(b1, 0.859) < 0.002 \
                      && dist(b3, 1.012) < 0.002 && dist(gru, 0.645) < 0.002) }' "$1"
}

# Exercise 5: the gated suite's steps case passes.
gated_steps_answers() { grep -q '^100%: Checks: [1-9][0-9]*, Failures: 0, Errors: 0$' "$1"; }

# Exercise 6: norm clipping at 0.5 keeps both runs; no clipping and value clipping lose both.
clip_05_answers() {
    grep -Eq '^no clipping +2/2 ' "$1" && grep -Eq '^norm clipping at 0\.5 +0/2 ' "$1" \
        && grep -Eq '^value clipping at \+-5 +2/2 ' "$1"
}

# Exercise 7: the first marker's share of the window, and which windows solve "first -1".
window_answers() {
    grep -Eq '^adding +8 +2 +0% ' "$1" && grep -Eq '^adding +8 +4 +0% ' "$1" \
        && grep -Eq '^adding +8 +6 +50% ' "$1" \
        && grep -Eq '^first -1 +8 +2 .* 0/2$' "$1" && grep -Eq '^first -1 +8 +4 .* 0/2$' "$1" \
        && grep -Eq '^first -1 +8 +6 .* 2/2$' "$1" && grep -Eq '^first -1 +8 +8 \(= T\) .* 2/2$' "$1" \
        && grep -Eq '^first -1 +8 +full BPTT .* 2/2$' "$1"
}

# Exercise 8: the orthogonal RNN solves the quick copy task on every seed at rho = 1, on none
# at rho = 0.3.
orthogonal_rho_1_answers() { grep -Eq '^orthogonal +0\.010 .* 3/3$' "$1"; }
orthogonal_rho_03_answers() { grep -Eq '^orthogonal +0\.010 .* 0/3$' "$1"; }

# The check of a command (as the doc writes it), or nothing when there is none.
answers_of() {
    case $1 in
        "build/examples/seed_cell --backward") echo seed_cell_answers ;;
        "build/examples/lab_gradient_norms --quick --rho 0.8") echo rho_08_answers ;;
        "build/examples/lab_gradient_norms --quick") echo forget_bias_answers ;;
        "CK_RUN_SUITE=gated CK_RUN_CASE=steps build/tests/run_tests") echo gated_steps_answers ;;
        "build/examples/lab_explosion --quick --clip 0.5") echo clip_05_answers ;;
        "build/examples/lab_truncated --quick") echo window_answers ;;
        "build/examples/lab_copy --quick --seeds 3") echo orthogonal_rho_1_answers ;;
        "build/examples/lab_copy --quick --seeds 3 --rho 0.3") echo orthogonal_rho_03_answers ;;
    esac
}
ALL_ANSWERS="seed_cell_answers rho_08_answers forget_bias_answers gated_steps_answers clip_05_answers
    window_answers orthogonal_rho_1_answers orthogonal_rho_03_answers"

# ---- the section's commands -----------------------------------------------------------------

awk '/^## Exercises$/ { inside = 1; next } /^## / { inside = 0 } inside' "$doc" \
    | sed -n 's/^ *Run: `\([^`]*\)`$/\1/p' | sort -u > "$tmp/commands"
check "$doc has exercises with commands (Run: \`COMMAND\`)" test -s "$tmp/commands"
mkdir -p "$tmp/work/results"
build=$(cd "$build" && pwd) || exit 2
used=""
n=0
while IFS= read -r command; do
    n=$((n + 1))
    answers=$(answers_of "$command")
    if [ -z "$answers" ]; then
        fail "no check of the answer to '$command' in $0"
        continue
    fi
    used="$used $answers"
    # shellcheck disable=SC2086 # the command's words, with build/ read as $build/, run where
    # results/ exists (the labs' default --out), as the section asks
    (cd "$tmp/work" && env $(printf '%s\n' "$command" | sed "s#build/#$build/#")) > "$tmp/out$n" 2>&1
    status=$?
    check "'$command' exits 0" test "$status" = 0
    check "... and gives the answer $doc states" "$answers" "$tmp/out$n"
done < "$tmp/commands"
for answers in $ALL_ANSWERS; do
    case " $used " in
        *" $answers "*) ;;
        *) fail "$doc no longer has the exercise that $answers checks" ;;
    esac
done

summary
