#!/bin/sh
# install-check.sh: make sure the Check unit-test framework (and pkg-config, which finds it)
# is installed, installing the Debian packages with apt-get when they are missing.
set -e
if pkg-config --exists check 2>/dev/null; then
    exit 0
fi
packages="check pkg-config"
if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-check.sh: Check is missing and this is not root and there is no sudo;" >&2
    echo "install it with: apt-get install $packages" >&2
    exit 1
fi
echo "install-check.sh: installing $packages with apt-get" >&2
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq $packages >/dev/null
pkg-config --exists check
