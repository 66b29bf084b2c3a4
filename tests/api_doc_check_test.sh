#!/bin/sh
# api_doc_check_test.sh: shows that tests/api_doc_check.sh can fail. It builds a small
# repository under a scratch directory (a header, a source file, docs/api.md, docs/notes.md,
# README.md) that passes the check, then plants one fault at a time in a fresh copy: a
# made-up name in a page, a name that is only part of a real one, a header name left out of
# docs/api.md, a page that cannot be read. Run from the repository root:
#     sh tests/api_doc_check_test.sh
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

script=$(pwd)/tests/api_doc_check.sh
if [ ! -r "$script" ]; then
    echo "api_doc_check_test: run from the repository root" >&2
    exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/api_doc_check_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

# A fresh scratch repository in $tree that passes the check: 2 header names in docs/api.md,
# and 6 names the pages mention (2 in api.md, 3 in notes.md, 1 in README.md), 8 checks.
fresh_tree() {
    tree=$tmp/tree
    rm -rf "$tree"
    mkdir -p "$tree/include" "$tree/src" "$tree/docs"
    cat > "$tree/include/tapegrad.h" <<'EOF'
/* tapegrad.h: a header of two names, for the test */
typedef struct tg_thing tg_thing;
int tg_thing_count(const tg_thing *thing);
EOF
    cat > "$tree/src/thing.c" <<'EOF'
/* thing.c: where the private names live */
#define TG_LIMIT 4
static int tg_helper(void) { return TG_LIMIT; }
EOF
    cat > "$tree/docs/api.md" <<'EOF'
# API
`tg_thing` is a thing; `tg_thing_count(thing)` counts it.
EOF
    cat > "$tree/docs/notes.md" <<'EOF'
# Notes
The calls `tg_thing_*` share `tg_helper`,
which returns TG_LIMIT.
EOF
    printf '%s\n' 'Start with tg_thing.' > "$tree/README.md"
}

# Runs the check in $tree with the given arguments: its output in $out, its status in $status.
run_check() {
    out=$(cd "$tree" && sh "$script" "$@" 2>&1)
    status=$?
}

says() { printf '%s\n' "$out" | grep -qF -- "$1"; }

fresh_tree
run_check
check "a clean tree: exit 0" test "$status" = 0
check "... and 8 checks passed" says "8 passed, 0 failed"

fresh_tree
printf '%s\n' 'Then call tg_no_such_call,' '' 'and tg_no_such_call again.' >> "$tree/docs/notes.md"
run_check
check "a made-up name in a page: exit 1" test "$status" = 1
check "... naming the page, the line and the name" \
    says "docs/notes.md:4: tg_no_such_call does not exist in the code (also lines 6)"
check "... one failed check" says "8 passed, 1 failed"

fresh_tree
printf '%s\n' 'Old name: tg_gone.' >> "$tree/README.md"
run_check
check "a made-up name in README.md: exit 1" test "$status" = 1
check "... named with its line" says "README.md:2: tg_gone does not exist in the code"

fresh_tree
printf '%s\n' 'Both tg_thin and tg_thing_coun are cut short.' >> "$tree/docs/notes.md"
run_check
check "parts of real names: exit 1" test "$status" = 1
check "... tg_thin is not tg_thing" says "docs/notes.md:4: tg_thin does not exist"
check "... tg_thing_coun is not tg_thing_count" says "docs/notes.md:4: tg_thing_coun does not exist"

fresh_tree
printf '%s\n' 'The tg_other_* calls.' >> "$tree/docs/notes.md"
run_check
check "a family that no name of the code starts: exit 1" test "$status" = 1
check "... named" says "docs/notes.md:4: tg_other_ does not exist"

fresh_tree
printf '%s\n' '<!-- not in the code: tg_relu -->' 'Say we add tg_relu.' >> "$tree/docs/notes.md"
run_check
check "a made-up name marked as such: exit 0" test "$status" = 0

fresh_tree
printf '%s\n' '<!-- not in the code: tg_helper -->' >> "$tree/docs/notes.md"
run_check
check "a real name marked as not in the code: exit 1" test "$status" = 1
check "... named with the marker's line" \
    says "docs/notes.md:4: tg_helper is marked as not in the code"
check "... and what to do" says "but the code has it (take it off that line)"

fresh_tree
printf '%s\n' '# API' '`tg_thing` is a thing.' > "$tree/docs/api.md"
run_check
check "a header name missing from docs/api.md: exit 1" test "$status" = 1
check "... named" says "missing from docs/api.md: tg_thing_count (function)"

fresh_tree
run_check docs/api.md include/tapegrad.h docs/notes.md docs/missing.md
check "a page that cannot be read: exit 2" test "$status" = 2
check "... named" says "cannot read docs/missing.md"

fresh_tree
printf '%s\n' 'Old name: tg_gone.' >> "$tree/README.md"
run_check docs/api.md include/tapegrad.h docs/notes.md
check "pages given as arguments: only those are read (exit 0)" test "$status" = 0

summary
