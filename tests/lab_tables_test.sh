#!/bin/sh
# lab_tables_test.sh: tests/lab_tables.sh can fail, on a stand-in lab. A directory of
# examples holds one program, lab_fake (a shell script that prints "fake 1.000" and writes
# fake.svg); a doc holds its table between lab markers, and img/ beside it a copy of its
# figure and a figure no lab writes. With --long the table and the figure pass and the other
# figure is skipped; a changed figure, and a table that differs from the output, fail;
# --fresh DIR reads the output and the figure from DIR instead of running the program.
# Only the lines about lab_fake count (the script's checks of the real labs fail here, as
# their programs are missing). Run from the repository root:
#     sh tests/lab_tables_test.sh
# The last line says "N passed, N failed"; the exit status is 1 when any check failed.
set -u

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab_tables_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

. "$(dirname "$0")/support/checks.sh"

mkdir -p "$tmp/examples" "$tmp/doc/img" "$tmp/fresh"
cat > "$tmp/examples/lab_fake" <<'EOF'
#!/bin/sh
# a stand-in lab: prints its table and writes DIR/fake.svg (--out DIR)
[ "$1" = --out ] || exit 2
echo "cell  value"
echo "fake  1.000"
echo "A" > "$2/fake.svg"
EOF
chmod +x "$tmp/examples/lab_fake"
doc=$tmp/doc/bptt.md
write_doc() { # write_doc NUMBER: the doc, its table saying fake NUMBER
    printf '%s\n' '<!-- lab: lab_fake: begin -->' '```' 'cell  value' "fake  $1" '```' \
        '<!-- lab: lab_fake: end -->' > "$doc"
}
echo "A" > "$tmp/doc/img/fake.svg"
echo "drawn by hand" > "$tmp/doc/img/other.svg"

# run [FLAGS...]: lab_tables.sh's output on the stand-ins and the doc, in $tmp/out
run() { sh tests/lab_tables.sh "$tmp/examples" "$@" "$doc" > "$tmp/out" 2>&1; }
says() { grep -q "$1" "$tmp/out" || { echo "  not in the output: $1"; sed 's/^/  | /' "$tmp/out"; false; }; }

write_doc 1.000
run
check "without --long the table is checked" says "^ok   $doc line 1: the table of 'lab_fake'"
check "... and no figure is" test "$(grep -c 'img/' "$tmp/out")" -eq 0
run --long
check "--long: a figure that is the fresh one passes" says "^ok   $tmp/doc/img/fake.svg is the fresh one"
check "--long: a figure that no lab writes is skipped" says "^skip $tmp/doc/img/other.svg: no lab program writes it"
echo "B" > "$tmp/doc/img/fake.svg"
run --long
check "--long: a changed figure fails" says "^FAIL $tmp/doc/img/fake.svg is the fresh one"
write_doc 1.100
run --long
check "a table that differs from the output fails" says "^FAIL $doc line 1: the table of 'lab_fake'"

# --fresh: the output and the figure come from the directory, not from a run
printf '%s\n' "cell  value" "fake  1.100" > "$tmp/fresh/lab_fake.txt"
echo "B" > "$tmp/fresh/fake.svg"
run --long --fresh "$tmp/fresh"
check "--fresh DIR: the table is read from DIR/lab_fake.txt" says "^ok   $doc line 1: the table of 'lab_fake'"
check "--fresh DIR: the figure is compared with DIR's" says "^ok   $tmp/doc/img/fake.svg is the fresh one"
run --fresh "$tmp/fresh"
check "--fresh without --long is refused" says "^usage: sh tests/lab_tables.sh"
run --long --fresh "$tmp/missing"
check "--fresh with a missing directory is refused" says "^lab_tables.sh: --fresh needs a directory"

summary
