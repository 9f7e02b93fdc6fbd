#!/bin/sh
# Make a kernel header tree visible to BCC at /lib/modules/$(uname -r)/{build,source}.
#
# BCC compiles its programs at run time against the headers it finds there. Debian ships
# headers only for Debian kernels; on a cloud or custom kernel none match, but networking
# programs only need *some* header tree (they compile with 6.1 headers on 6.18), so we link
# the newest installed tree and say loudly that it does not match. Used by `make`, the
# container entrypoint and the Vagrant provisioning script.
set -eu
K=$(uname -r)
if [ -e "/lib/modules/$K/build/include/linux/kconfig.h" ] || [ -e "/lib/modules/$K/source/include/linux/kconfig.h" ]; then
    tree=$(readlink -f "/lib/modules/$K/build")
    case "$tree" in
        *"$K"*) echo "kernel-headers: headers for the running kernel $K are present ($tree)" ;;
        *) echo "kernel-headers: WARNING: headers do not match the running kernel $K; BCC uses $tree (fine for networking programs)" ;;
    esac
    exit 0
fi
# Newest build tree belonging to another kernel version.
H=""
for d in /lib/modules/*/build; do
    [ -e "$d" ] || continue
    case "$d" in "/lib/modules/$K/build") continue ;; esac
    H="$d"
done
if [ -z "$H" ]; then
    echo "kernel-headers: ERROR: no kernel header tree under /lib/modules; install linux-headers-amd64" >&2
    exit 1
fi
H=${H%/build}
mkdir -p "/lib/modules/$K"
ln -sfn "$(readlink -f "$H/build")" "/lib/modules/$K/build"
if [ -e "$H/source" ]; then
    ln -sfn "$(readlink -f "$H/source")" "/lib/modules/$K/source"
else
    ln -sfn "$(readlink -f "$H/build")" "/lib/modules/$K/source"
fi
echo "kernel-headers: WARNING: no headers match the running kernel $K; BCC will use $(basename "$H") headers (fine for networking programs)"
