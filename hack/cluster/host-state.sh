#!/usr/bin/env bash
# Copyright 2026 The Herald Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# Prints what the local cluster may change on the host, normalized so that
# two snapshots diff cleanly: network links and addresses, routes, the
# netfilter ruleset (iptables and ip6tables), sysctls, mounts, /kubepods
# cgroups, the cluster's processes and the host paths it writes. e2e-cluster
# takes one before cluster-up and compares it with one after cluster-down:
#
#   hack/cluster/host-state.sh >before; ...; hack/cluster/host-state.sh | diff before -
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

section() { printf '### %s\n' "$1"; }

section links
ip -o link show | awk '{ sub(/@.*/, "", $2); print $2, $3 }' | sort
section addresses
ip -o addr show | awk '{ print $2, $3, $4 }' | sort
section routes
ip route show | sort
ip -6 route show | sort
for t in iptables ip6tables; do
	section "${t}"
	if command -v "${t}-save" >/dev/null 2>&1; then
		"${t}-save" 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'
	fi
done
section nftables
if command -v nft >/dev/null 2>&1; then
	nft list ruleset 2>/dev/null
fi
section sysctl
sysctl -a 2>/dev/null | grep -Ev "${SYSCTL_VOLATILE}" | sort
section mounts
awk '{ print $2, $3 }' /proc/self/mounts | sort
section cgroups
ls -d /sys/fs/cgroup/*/kubepods* 2>/dev/null
section processes
# The cluster's processes: its daemons by name, anything holding files in the
# state directory, and everything in a kubepods cgroup.
for p in /proc/[0-9]*; do
	pid=${p#/proc/}
	comm=$(cat "${p}/comm" 2>/dev/null) || continue
	cmd=$(tr '\0' ' ' <"${p}/cmdline" 2>/dev/null)
	case "${comm}" in
	containerd | containerd-shim* | kubelet | kube-proxy | kube-scheduler | kube-controller | coredns | nats-server | pause | subscriber)
		echo "${comm} ${cmd}"
		continue
		;;
	esac
	if [[ "${cmd}" == *"${STATE}"* ]] || grep -q kubepods "${p}/cgroup" 2>/dev/null; then
		echo "${comm} ${cmd}"
	fi
done | sort
section paths
for d in "${HOST_PATHS[@]}" "${STATE}"; do
	[[ -e "${d}" ]] && echo "${d}"
done
exit 0
