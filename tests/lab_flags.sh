#!/bin/sh
# lab_flags.sh: the five lab flags --lr, --hidden, --rho, --clip and --seeds (examples/cli.h)
# in every lab program that has them. For each flag a program takes: its --help says what the
# flag does to it, a --quick run with the flag exits 0 and applies it (a CSV file it writes
# differs from the plain --quick run's), and values out of range are refused with exit status
# 2 and the reason ("--lr 0: must be > 0"). For each flag it does not take: refused with exit
# status 2, the flag's name and the program's reason. Run from the repository root:
#     sh tests/lab_flags.sh BUILD/examples
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh tests/lab_flags.sh BUILD/examples" >&2
    exit 2
fi
examples=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab_flags.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

# Runs PROGRAM --quick [FLAGS...] into a fresh directory $tmp/run; its exit status in $status,
# its stderr in $tmp/err.
quick_run() {
    program=$1
    shift
    rm -rf "$tmp/run" && mkdir "$tmp/run"
    "$examples/$program" --out "$tmp/run" --quick "$@" > "$tmp/run/stdout.txt" 2> "$tmp/err"
    status=$?
}

# True when the last run exited with status 2 and its stderr holds every one of the texts.
refused_saying() {
    test "$status" = 2 || return 1
    for text in "$@"; do
        grep -qF -- "$text" "$tmp/err" || return 1
    done
}

# True when PROGRAM --help has a line for FLAG.
help_has() { "$examples/$1" --help | grep -q -- "^  $2 "; }

# True when some CSV file of directory $1 differs from the same file in directory $2.
some_csv_differs() {
    for file in "$1"/*.csv; do
        [ -f "$file" ] || continue # no CSV at all: the pattern itself
        cmp -s "$file" "$2/$(basename "$file")" || return 0
    done
    return 1
}

# The plain --quick run of PROGRAM, kept in $tmp/PROGRAM.plain.
plain_run() {
    quick_run "$1"
    check "$1 --quick exits 0" test "$status" = 0
    rm -rf "$tmp/$1.plain" && mv "$tmp/run" "$tmp/$1.plain"
}

# PROGRAM takes FLAG: VALUE is applied; $4.. are bad values, each refused with its reason.
takes() {
    program=$1 flag=$2 value=$3
    shift 3
    check "$program --help says what $flag does" help_has "$program" "$flag"
    quick_run "$program" "$flag" "$value"
    check "$program $flag $value: exits 0" test "$status" = 0
    check "... and applies it (a CSV file differs from the plain run's)" \
        some_csv_differs "$tmp/run" "$tmp/$program.plain"
    while [ $# -gt 1 ]; do
        quick_run "$program" "$flag" "$1"
        check "$program $flag $1: refused (exit 2) saying '$flag $1: $2'" \
            refused_saying "$program: $flag $1: $2"
        shift 2
    done
    quick_run "$program" "$flag"
    check "$program $flag without a value: refused" refused_saying "$flag needs a value"
}

# PROGRAM refuses FLAG, saying REASON (a part of it).
refuses() {
    program=$1 flag=$2 reason=$3
    quick_run "$program" "$flag" 1
    check "$program refuses $flag (exit 2) saying '$reason'" \
        refused_saying "$program: $flag: " "$reason"
}

# The bad values every program refuses, flag by flag: VALUE REASON pairs.
bad_lr() { takes "$1" --lr "$2" 0 "must be > 0" -0.1 "must be > 0" abc "not a finite number" \
    11 "must be at most 10" inf "not a finite number" 1e-50 "out of a float's range"; }
bad_hidden() { takes "$1" --hidden "$2" 0 "must be from 1 to 512" 513 "must be from 1 to 512" \
    2.5 "not a whole number"; }
bad_rho() { takes "$1" --rho "$2" 0 "must be > 0" 11 "must be at most 10" nan "not a finite number"; }
bad_clip() { takes "$1" --clip "$2" 0 "must be > 0" -1 "must be > 0"; }
bad_seeds() { takes "$1" --seeds "$2" 0 "must be from 1 to 100" 101 "must be from 1 to 100" \
    x "not a whole number"; }

plain_run lab_gradient_norms
bad_hidden lab_gradient_norms 20
bad_rho lab_gradient_norms 0.8
bad_seeds lab_gradient_norms 1
refuses lab_gradient_norms --lr "trains nothing"
refuses lab_gradient_norms --clip "trains nothing"

plain_run lab_explosion
bad_lr lab_explosion 0.05
bad_hidden lab_explosion 8
bad_rho lab_explosion 1.2
bad_clip lab_explosion 0.5
bad_seeds lab_explosion 1
quick_run lab_explosion --long --rho 2
check "lab_explosion --long refuses --rho: it runs lab_adding's settings" \
    refused_saying "lab_explosion: --rho: --long trains lab_adding's RNN"

plain_run lab_truncated
bad_lr lab_truncated 0.003
bad_hidden lab_truncated 4
bad_seeds lab_truncated 1
refuses lab_truncated --rho "W_h = rho Q is the tanh RNN's"
refuses lab_truncated --clip "does not clip"

plain_run lab_adding
bad_lr lab_adding 0.003
bad_hidden lab_adding 8
bad_rho lab_adding 0.9
check "lab_adding: the CSV's settings say init=pytorch without --rho" \
    grep -q "^rnn,.*init=pytorch$" "$tmp/lab_adding.plain/adding_runs.csv"
quick_run lab_adding --rho 0.9
check "... and init=orthogonal rho=0.9 for the RNN with --rho 0.9" \
    grep -q "^rnn,.*init=orthogonal rho=0.9$" "$tmp/run/adding_runs.csv"
check "... and still init=pytorch for the gated cells" \
    grep -q "^lstm,.*init=pytorch$" "$tmp/run/adding_runs.csv"
bad_clip lab_adding 0.1
bad_seeds lab_adding 2

plain_run lab_copy
bad_lr lab_copy 0.003
bad_hidden lab_copy 8
bad_rho lab_copy 0.9
bad_clip lab_copy 0.1
bad_seeds lab_copy 2

summary
