#!/bin/sh
# install-web.sh: make sure the browser lab's toolchain and test browser are installed (clang,
# lld and wasi-libc to build the WebAssembly, the compiler's wasm32 runtime, chromium and node
# to test it), installing the missing Debian packages with apt-get, as install-check.sh does.
set -e
packages="clang lld llvm wasi-libc libclang-rt-14-dev-wasm32 chromium nodejs"
missing=""
for package in $packages; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-web.sh: missing:$missing, and this is not root and there is no sudo;" >&2
    echo "install them with: apt-get install$missing" >&2
    exit 1
fi
echo "install-web.sh: installing$missing with apt-get" >&2
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq $missing >/dev/null
