#!/bin/sh
# Install the Debian packages that building and testing sshfsd needs.
# Silent when everything is present.  As root it installs the missing
# packages with apt-get.  Otherwise it prints the command to run and exits 1.
set -eu

# This is the only list of the packages, and README.md points here.
#   build-essential, pkg-config  compiler, make, C library headers
#   clang, libclang-rt-dev       the sanitizer and libFuzzer trees
#   libssl-dev, libcmocka-dev    libcrypto and the unit-test framework
#   libseccomp-dev               the server's system-call sandbox
#   openssl, xxd, python3        test fixtures and checks in shell tests
#   python3-cryptography         the independent AES-CCM implementation
#                                that tests/tool/ccm_crypt.py builds on
#   openssh-client, openssh-server, sshfs, fuse3
#                                interoperability tests with real clients
#   putty-tools, python3-paramiko, rclone, lftp, curl
#                                the other SSH clients tests/ssh/ runs
#   strace                       tests/isolation/ traces the servers
PACKAGES="
build-essential
pkg-config
clang
libclang-rt-dev
libssl-dev
libcmocka-dev
libseccomp-dev
openssl
xxd
python3
python3-cryptography
openssh-client
openssh-server
sshfs
fuse3
putty-tools
python3-paramiko
rclone
lftp
curl
strace
"

missing=""
for package in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) \
        || status=""
    if [ "$status" != "installed" ]; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages:$missing" >&2
    echo "install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi

echo "installing missing packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# $missing is a space-separated list of package names and must split.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
