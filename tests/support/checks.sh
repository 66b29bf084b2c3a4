# checks.sh: the pass/fail counting the shell tests share. A test sources it
#     . "$(dirname "$0")/support/checks.sh"
# then calls pass, fail or check for each check and ends with summary, which prints
# "N passed, N failed" and returns 1 when any check failed.
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { # check DESCRIPTION COMMAND...: pass when the command succeeds
    description=$1
    shift
    if "$@"; then pass "$description"; else fail "$description"; fi
}
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
