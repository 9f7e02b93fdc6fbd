#!/bin/sh
# Container entrypoint: make the node's kernel headers visible to BCC, then become the
# agent (exec, so that it is PID 1 and receives SIGTERM from the kubelet directly: the
# priority-0 handover depends on it).
#
# The DaemonSet mounts the host's /lib/modules and /usr/src read-only. When the node has
# headers for its running kernel, kernel-headers.sh only reports them. When it has none,
# the script cannot add the link in a read-only mount: the agent then starts anyway and
# receives in userspace, and says so in its log (install linux-headers-$(uname -r) on the
# node to get the eBPF filter).
set -eu
if ! /opt/vrrp-agent/deploy/kernel-headers.sh; then
    echo "entrypoint: WARNING: no kernel headers for BCC; the eBPF filter will be unavailable" >&2
fi
exec /opt/vrrp-agent/.venv/bin/vrrp-agent "$@"
