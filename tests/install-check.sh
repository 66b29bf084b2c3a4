#!/bin/sh
# install-check.sh: make sure the Check unit-test framework (and pkg-config, which finds it)
# is installed, installing the Debian packages with apt-get when they are missing.
set -e
if pkg-config --exists check 2>/dev/null; then
    exit 0
fi
sh "$(dirname "$0")/support/apt_install.sh" install-check.sh check pkg-config
pkg-config --exists check
