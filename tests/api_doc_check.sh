#!/bin/sh
# tests/api_doc_check.sh: checks that the docs and the code name the same things, both ways:
# docs/api.md mentions every public function and type of include/tapegrad.h, and every tg_ or
# TG_ name that the docs mention still exists in the code.
#
#   usage: tests/api_doc_check.sh [DOC [HEADER [PAGE...]]]    (run from the repository root)
#
# DOC defaults to docs/api.md, HEADER to include/tapegrad.h, and the PAGEs to docs/*.md and
# README.md.
#
# 1. The header's names in DOC. The names come from the header itself: comments, string
# literals and preprocessor lines are dropped, the bodies of structs, unions, enums and
# initialisers are skipped (so function-pointer fields and members are never taken for
# functions), and the rest is cut into declarations at each ';'. A declaration that starts
# with `typedef` gives a type: its last identifier, or NAME in `(*NAME)` for a
# function-pointer typedef. Any other declaration whose first `NAME (` is a tg_ name gives a
# function, however the declaration is spread over lines. Only tg_ names count. Each name must
# appear in DOC as a whole word; each missing one prints "missing from DOC: NAME (type)" (or
# "(function)").
#
# 2. The PAGEs' names in the code. Every whole word of a PAGE that starts with tg_ or TG_ must
# be a whole word of HEADER or of some file under src/, examples/, tests/ or bench/ (comments
# count; this script and its test, tests/api_doc_check*.sh, do not). A word that ends in "_",
# as in `tg_rnn_cell_*`, stands for a family: some word of the code must start with it. A page
# may name things that are not in the code on purpose (an op invented for an example) on a
# line of its own:
#     <!-- not in the code: tg_relu -->
# Those names are then allowed anywhere in that page, and it is an error when one of them does
# exist in the code. Each other missing name prints "PAGE:LINE: NAME does not exist in the
# code", with the further lines that mention it. One check per name per page.
#
# The last line is "N passed, N failed" over both kinds of checks. Exits 0 when all pass, 1
# when any fails, 2 when the header or a page cannot be read or the header yields no names.
set -u

doc=${1:-docs/api.md}
header=${2:-include/tapegrad.h}
if [ $# -gt 2 ]; then
    shift 2
else
    set -- docs/*.md README.md
fi

for file in "$header" "$@"; do
    if [ ! -r "$file" ]; then
        echo "api_doc_check: cannot read $file (run from the repository root)" >&2
        echo "0 passed, 0 failed"
        exit 2
    fi
done
if [ ! -r "$doc" ]; then
    echo "api_doc_check: cannot read $doc; every name counts as missing" >&2
fi

# One line per name: "function NAME" or "type NAME".
names=$(awk '
    { text = text $0 "\n" }

    # Appends the declaration text seen so far to the statement being built.
    function add(s) { stmt = stmt s }

    function trim(s) { sub(/^[ \t\n]+/, "", s); sub(/[ \t\n]+$/, "", s); return s }

    # The identifiers that are directly followed by "(" in s, with the parenthesis depth
    # they stand at: cand[1..ncand], cand_depth[], cand_star[] (1 when written "(*name(").
    function candidates(s,    i, n, c, d, id, j, p) {
        ncand = 0; d = 0; n = length(s); id = ""
        for (i = 1; i <= n; i++) {
            c = substr(s, i, 1)
            if (c ~ /[A-Za-z0-9_]/) {
                id = id c
                continue
            }
            if (id != "" && id !~ /^[0-9]/) {
                j = i
                while (substr(s, j, 1) == " ") j++
                if (substr(s, j, 1) == "(") {
                    ncand++; cand[ncand] = id; cand_depth[ncand] = d
                    p = substr(s, 1, i - length(id) - 1)
                    cand_star[ncand] = (p ~ /\( *\* *$/)
                }
            }
            id = ""
            if (c == "(") d++
            else if (c == ")") d--
        }
    }

    # The identifier just before the last top-level "(...)" group at the end of s, or "".
    function last_group_name(s,    i, d, c) {
        s = trim(s)
        if (s !~ /\)$/)
            return ""
        d = 0
        for (i = length(s); i > 0; i--) {
            c = substr(s, i, 1)
            if (c == ")") d++
            else if (c == "(" && --d == 0) break
        }
        s = substr(s, 1, i - 1)
        sub(/ +$/, "", s)
        return match(s, /[A-Za-z_][A-Za-z0-9_]*$/) ? substr(s, RSTART, RLENGTH) : ""
    }

    # One top-level declaration, without its ";" (braced bodies already reduced to "{}").
    function declaration(s,    parts, i, k, piece, name, any) {
        gsub(/[ \t\n]+/, " ", s)
        s = trim(s)
        if (s == "")
            return
        if (s ~ /^typedef /) {
            if (match(s, /\( *\* *tg_[A-Za-z0-9_]+ *\)/)) {      # typedef R (*tg_f)(...)
                name = substr(s, RSTART, RLENGTH)
                gsub(/[^A-Za-z0-9_]/, "", name)
                found["type " name] = 1
                return
            }
            candidates(s)
            for (i = 1; i <= ncand; i++)                         # typedef R tg_f(...)
                if (cand_depth[i] == 0 && cand[i] ~ /^tg_/) {
                    found["type " cand[i]] = 1
                    any = 1
                }
            if (any)
                return
            gsub(/\{\}/, " ", s)
            k = split(s, parts, ",")                             # typedef T a, *b;
            for (i = 1; i <= k; i++) {
                piece = parts[i]
                gsub(/\[[^]]*\]/, "", piece)                     # array typedefs
                piece = trim(piece)
                if (match(piece, /tg_[A-Za-z0-9_]+$/) &&
                    (RSTART == 1 || substr(piece, RSTART - 1, 1) !~ /[A-Za-z0-9_]/))
                    found["type " substr(piece, RSTART, RLENGTH)] = 1
            }
            return
        }
        # Functions: every tg_ name followed by "(" outside all parentheses (parameters,
        # attributes and "(*pointer)(" are inside some, or not followed by "("), or failing
        # that one written "R (*tg_f(args))(args2)", a function returning a function pointer.
        candidates(s)
        for (i = 1; i <= ncand; i++)
            if (cand_depth[i] == 0 && cand[i] ~ /^tg_/) {
                found["function " cand[i]] = 1
                any = 1
            }
        for (i = 1; i <= ncand && !any; i++)
            if (cand_depth[i] == 1 && cand_star[i] && cand[i] ~ /^tg_/) {
                found["function " cand[i]] = 1
                any = 1
            }
    }

    END {
        # 1. Drop comments and the contents of string and character literals; keep newlines.
        n = length(text); out = ""; i = 1
        while (i <= n) {
            c = substr(text, i, 1); c2 = substr(text, i, 2)
            if (c2 == "/*") {
                j = index(substr(text, i + 2), "*/")
                body = j ? substr(text, i + 2, j - 1) : substr(text, i + 2)
                gsub(/[^\n]/, "", body)
                out = out " " body
                i = j ? i + 2 + j + 1 : n + 1
            } else if (c2 == "//") {
                while (i <= n && substr(text, i, 1) != "\n") i++
            } else if (c == "\"" || c == "\047") {
                q = c; out = out q; i++
                while (i <= n && substr(text, i, 1) != q) {
                    if (substr(text, i, 1) == "\\") i++
                    i++
                }
                out = out q; i++
            } else {
                out = out c; i++
            }
        }

        # 2. Drop preprocessor lines, with their backslash continuations.
        k = split(out, lines, "\n"); code = ""; cont = 0
        for (l = 1; l <= k; l++) {
            line = lines[l]
            if (cont || line ~ /^[ \t]*#/) {
                cont = (line ~ /\\$/)
                continue
            }
            code = code line "\n"
        }

        # 3. Cut into top-level declarations. Braces after `extern "C"` are transparent;
        #    any other braces (struct, union, enum, initialiser, inline function body) are
        #    skipped and leave "{}" in the declaration.
        n = length(code); stmt = ""; depth = 0; top = 0
        for (i = 1; i <= n; i++) {
            c = substr(code, i, 1)
            if (c == "{") {
                if (depth == 0 && trim(stmt) ~ /^extern *""$/) {  # extern "C" {
                    kind[++top] = "e"; stmt = ""
                    continue
                }
                # A function body follows "name(...)" in a declaration that is not a
                # typedef or an initialiser ("struct __attribute__((x)) {" is no function).
                g = depth == 0 ? last_group_name(stmt) : ""
                kind[++top] = (g != "" && g !~ /^(__attribute__|__declspec|_Alignas|alignas)$/ &&
                               trim(stmt) !~ /^typedef / && stmt !~ /=/) ? "f" : "s"
                if (depth++ == 0)
                    add("{}")
            } else if (c == "}") {
                if (top == 0)
                    continue                                      # unbalanced: ignore
                k2 = kind[top--]
                if (k2 == "e")
                    continue
                if (--depth == 0 && k2 == "f") {                  # function definition
                    sub(/\{\}$/, "", stmt)
                    declaration(stmt); stmt = ""
                }
            } else if (depth > 0) {
                continue
            } else if (c == ";") {
                declaration(stmt); stmt = ""
            } else {
                add(c)
            }
        }
        declaration(stmt)

        for (key in found)
            print key
    }
' "$header" | sort -k2)

if [ -z "$names" ]; then
    echo "api_doc_check: found no tg_ functions or types in $header" >&2
    echo "0 passed, 0 failed"
    exit 2
fi

passed=0
failed=0
# The names hold only [A-Za-z0-9_], so they are safe in a regular expression.
while read -r what name; do
    if [ -r "$doc" ] && grep -Eq "(^|[^A-Za-z0-9_])${name}([^A-Za-z0-9_]|\$)" "$doc"; then
        passed=$((passed + 1))
    else
        echo "missing from $doc: $name ($what)"
        failed=$((failed + 1))
    fi
done <<EOF
$names
EOF

# The header and every file of the code directories but this check and its test, as one text.
code_text() {
    cat "$header"
    for dir in src examples tests bench; do
        if [ -d "$dir" ]; then
            find "$dir" -type f ! -name 'api_doc_check*.sh' -exec cat {} +
        fi
    done
}

# Every whole word of the code that starts with tg_ or TG_, one a line.
code_names=$(code_text | awk -F '[^A-Za-z0-9_]+' '
    /tg_|TG_/ {
        for (i = 1; i <= NF; i++)
            if ($i ~ /^(tg|TG)_/)
                seen[$i] = 1
    }
    END { for (name in seen) print name }
')

# Prints each name of the pages that the code lacks, then a last line "PASSED FAILED".
pages=$(awk -F '[^A-Za-z0-9_]+' -v code="$code_names" '
    BEGIN {
        n = split(code, list, "\n")
        for (i = 1; i <= n; i++)
            in_code[list[i]] = 1
    }

    # 1 when the code has name as a word or, for a family "tg_x_", a word starting with it.
    function exists(name,    word) {
        if (name in in_code)
            return 1
        if (name !~ /_$/)
            return 0
        for (word in in_code)
            if (index(word, name) == 1)
                return 1
        return 0
    }

    function new_page() {
        page = FILENAME; nnames = 0
        split("", order); split("", lines); split("", last); split("", allowed)
    }

    # The checks of one page, once all its lines are read.
    function finish_page(    i, name, first, rest, k) {
        for (name in allowed)
            if (exists(name)) {
                print page ":" allowed[name] ": " name " is marked as not in the code," \
                      " but the code has it (take it off that line)"
                failed++
            } else {
                passed++
            }
        for (i = 1; i <= nnames; i++) {
            name = order[i]
            if (name in allowed)
                continue
            if (exists(name)) {
                passed++
                continue
            }
            first = lines[name]; rest = ""
            if ((k = index(first, ", ")) > 0) {
                rest = " (also lines " substr(first, k + 2) ")"
                first = substr(first, 1, k - 1)
            }
            print page ":" first ": " name " does not exist in the code" rest
            failed++
        }
    }

    FNR == 1 {
        if (page != "")
            finish_page()
        new_page()
    }

    /<!-- *not in the code:/ {
        for (i = 1; i <= NF; i++)
            if ($i ~ /^(tg|TG)_/)
                allowed[$i] = FNR
        next
    }

    /tg_|TG_/ {
        for (i = 1; i <= NF; i++) {
            name = $i
            if (name !~ /^(tg|TG)_/)
                continue
            if (!(name in lines)) {
                order[++nnames] = name
                lines[name] = FNR
            } else if (last[name] != FNR) {
                lines[name] = lines[name] ", " FNR
            }
            last[name] = FNR
        }
    }

    END {
        if (page != "")
            finish_page()
        print passed + 0, failed + 0
    }
' "$@")

printf '%s\n' "$pages" | sed '$d'
read -r page_passed page_failed <<EOF
$(printf '%s\n' "$pages" | sed -n '$p')
EOF
passed=$((passed + page_passed))
failed=$((failed + page_failed))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
