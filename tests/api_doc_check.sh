#!/bin/sh
# tests/api_doc_check.sh: checks that docs/api.md mentions every public function and type
# of include/tapegrad.h.
#
#   usage: tests/api_doc_check.sh [DOC [HEADER]]    (run from the repository root)
#
# DOC defaults to docs/api.md and HEADER to include/tapegrad.h. The names come from the
# header itself: comments, string literals and preprocessor lines are dropped, the bodies of
# structs, unions, enums and initialisers are skipped (so function-pointer fields and
# members are never taken for functions), and the rest is cut into declarations at each ';'.
# A declaration that starts with `typedef` gives a type: its last identifier, or NAME in
# `(*NAME)` for a function-pointer typedef. Any other declaration whose first `NAME (` is a
# tg_ name gives a function, however the declaration is spread over lines. Only tg_ names
# count. Each name must appear in DOC as a whole word. Prints the missing names, then a last
# line "N passed, N failed"; exits 1 when a name is missing, 2 when the header cannot be read
# or yields no names.
set -u

doc=${1:-docs/api.md}
header=${2:-include/tapegrad.h}

if [ ! -r "$header" ]; then
    echo "api_doc_check: cannot read $header (run from the repository root)" >&2
    echo "0 passed, 0 failed"
    exit 2
fi
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
