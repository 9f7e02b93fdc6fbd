#!/bin/sh
# Provision one VM: install vrrp-agent as a systemd service, exactly as README.md says
# ("Deployment: systemd"), with the repository already at /opt/vrrp-agent (Vagrant copies
# it there instead of `git clone`).
#
#     provision.sh NODE_ADDRESS PRIORITY      e.g. provision.sh 192.168.56.11 150
#
# The VRRP interface is the one carrying NODE_ADDRESS (eth1 on the Debian boxes, but the
# name depends on the provider). Idempotent: `vagrant provision` runs it again safely.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 NODE_ADDRESS PRIORITY" >&2
    exit 2
fi
ADDRESS=$1
PRIORITY=$2
REPO=/opt/vrrp-agent
CONFIG_DIR=/etc/vrrp-agent

IFACE=$(ip -o -4 addr show | awk -v a="$ADDRESS" '{ split($4, p, "/"); if (p[1] == a) print $2 }')
if [ -z "$IFACE" ]; then
    echo "provision: no interface has the address $ADDRESS" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# make and git for the README's steps; nftables for the split-brain scenario.
apt-get update -qq
apt-get install -y -qq make git nftables >/dev/null

# README, Deployment: systemd.
cd "$REPO"
make setup
install -d "$CONFIG_DIR"
# The check script of the check-fault scenario: fails while /run/vrrp-agent-fault exists.
install -m 0755 /dev/stdin "$CONFIG_DIR/check-fault-flag.sh" <<'SCRIPT'
#!/bin/sh
# Healthy unless the scenario raised the fault flag.
test ! -e /run/vrrp-agent-fault
SCRIPT
install -m 0644 /dev/stdin "$CONFIG_DIR/vrrp-agent.toml" <<TOML
# Written by vagrant/provision.sh for $(hostname) ($ADDRESS).
[global]
log_level = "info"

[[script]]
name = "chk_fault_flag"
path = "$CONFIG_DIR/check-fault-flag.sh"
interval = 0.5
fall = 1
rise = 1

[[instance]]
name = "VI_1"
interface = "$IFACE"
vrid = 51
priority = $PRIORITY
version = 3
advert_interval = 0.2
vips = ["192.168.56.100/24"]
track_scripts = ["chk_fault_flag"]
TOML
.venv/bin/vrrp-agent check "$CONFIG_DIR/vrrp-agent.toml"
install -m 0644 systemd/vrrp-agent.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable vrrp-agent
systemctl restart vrrp-agent
systemctl --no-pager --lines=5 status vrrp-agent
