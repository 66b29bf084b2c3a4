#!/bin/sh
# apt_install.sh: installs those of the named Debian packages that are missing, with apt-get,
# as root or through sudo; what tests/install-check.sh and tests/install-web.sh share.
#     sh tests/support/apt_install.sh WHO PACKAGE...
# WHO names the caller in its messages. Without root or sudo it says what to install and
# exits 1.
set -e
who=$1
shift
missing=""
for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "$who: missing:$missing, and this is not root and there is no sudo;" >&2
    echo "install them with: apt-get install$missing" >&2
    exit 1
fi
echo "$who: installing$missing with apt-get" >&2
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq $missing >/dev/null
