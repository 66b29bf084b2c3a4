#!/bin/sh
# install-web.sh: make sure the browser lab's toolchain and test browser are installed (clang,
# lld and wasi-libc to build the WebAssembly, the compiler's wasm32 runtime, chromium and node
# to test it), installing the missing Debian packages with apt-get, as install-check.sh does.
exec sh "$(dirname "$0")/support/apt_install.sh" install-web.sh \
    clang lld llvm wasi-libc libclang-rt-14-dev-wasm32 chromium nodejs
