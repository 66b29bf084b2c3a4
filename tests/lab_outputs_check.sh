#!/bin/sh
# lab_outputs_check.sh: every file a lab program (BUILD_DIR/examples/lab_*) writes, its CSV
# tables as much as its charts, is written the library's way. Each lab runs once (--quick)
# into an empty directory, to learn its files; then again into a directory where each of
# those names is a symbolic link to a file elsewhere that has a second (hard) link and
# permissions 0600. After the second run each name must still be the same link, its target
# must hold what the first run wrote (so it was written through the link), the hard link must
# still hold the old text (so the target was replaced in one piece, not rewritten in place),
# the permissions must be kept, and no temporary file may be left. Run from the repository
# root:
#     sh tests/lab_outputs_check.sh build
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh tests/lab_outputs_check.sh BUILD_DIR" >&2
    exit 2
fi
build=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab_outputs.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

passed=0
failed=0
check() { # check DESCRIPTION COMMAND...: pass when the command succeeds
    description=$1
    shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $description"; fi
}

for program in "$build"/examples/lab_*; do
    lab=$(basename "$program")
    mkdir "$tmp/$lab.first" "$tmp/$lab.out" "$tmp/$lab.real"
    check "$lab writes its files" "$program" --quick --out "$tmp/$lab.first"
    names=$(ls "$tmp/$lab.first")
    for name in $names; do
        echo old > "$tmp/$lab.real/$name"
        chmod 600 "$tmp/$lab.real/$name"
        ln "$tmp/$lab.real/$name" "$tmp/$lab.real/$name.kept"
        ln -s "../$lab.real/$name" "$tmp/$lab.out/$name"
    done
    check "$lab writes through links" "$program" --quick --out "$tmp/$lab.out"
    for name in $names; do
        real=$tmp/$lab.real/$name
        check "$lab: $name is still the link" test "$(readlink "$tmp/$lab.out/$name")" = "../$lab.real/$name"
        check "$lab: $name was written through the link" cmp -s "$tmp/$lab.first/$name" "$real"
        check "$lab: $name was replaced in one piece" test "$(cat "$real.kept")" = old
        check "$lab: $name kept its permissions" test "$(ls -l "$real" | cut -c1-10)" = "-rw-------"
    done
    files=$(ls "$tmp/$lab.real" | wc -l)
    check "$lab leaves no temporary file" test "$files" -eq $((2 * $(echo "$names" | wc -w)))
done > "$tmp/log" 2>&1
grep '^FAIL' "$tmp/log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
