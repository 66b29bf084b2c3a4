#!/bin/sh
# reading_list_check_test.sh: shows that tests/reading_list_check.sh can fail: on a scratch
# page whose reading list is right it passes; with a wrong line count, a missing file, a total
# over the limit, or no reading list at all it fails. Run from the repository root.
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

script=$(pwd)/tests/reading_list_check.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/reading_list_check_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
expect() { # expect DESCRIPTION STATUS DOC [LIMIT]: the script on DOC exits with STATUS
    description=$1 want=$2
    shift 2
    (cd "$tmp" && sh "$script" "$@" > out.txt 2>&1)
    got=$?
    if [ "$got" = "$want" ]; then
        passed=$((passed + 1)); echo "ok   $description: exit $got"
    else
        failed=$((failed + 1)); echo "FAIL $description: exit $got, wanted $want"; cat "$tmp/out.txt"
    fi
}

printf 'one\ntwo\nthree\n' > "$tmp/a.c"
printf 'one\ntwo\n' > "$tmp/b.c"
page() { # page FILE LINES_OF_A LINES_OF_B [PATH_OF_B]
    printf '# Page\n\n## Read these files first\n\n| # | file | lines | what |\n| --- | --- | --- | --- |\n| 1 | `a.c` | %s | a |\n| 2 | `%s` | %s | b |\n\n## Next\n\n| 3 | `a.c` | 99 | not in the list |\n' \
        "$2" "${4:-b.c}" "$3" > "$tmp/$1"
}
page right.md 3 2
page wrong.md 3 5
page missing.md 3 2 c.c
printf '# Page with no list\n' > "$tmp/none.md"

expect "a right reading list" 0 right.md
expect "a wrong line count" 1 wrong.md
expect "a file that does not exist" 1 missing.md
expect "a total over the limit" 1 right.md 4
expect "no reading list" 2 none.md

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
