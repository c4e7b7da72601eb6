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

# Stops the local cluster and undoes every change up.sh made to the host:
# processes (by pid file, and the cluster's container shims and pod
# processes by pid), mounts, network namespaces and links, the netfilter
# ruleset (iptables and ip6tables), /kubepods cgroups, sysctls, and the host
# paths the kubelet, containerd and CNI created. Safe to run any number of
# times, with or without a cluster. The logs are kept in bin/cluster/logs/.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || die "needs root"
T0=$(date +%s%N)
ms() { echo "$(( ($(date +%s%N) - T0) / 1000000 ))ms"; }

# alive PID: the process exists and is not a zombie (an exited daemon whose
# parent, init, has not reaped it yet).
alive() { [[ -e "/proc/$1" ]] && ! awk '{ exit $3 != "Z" }' "/proc/$1/stat" 2>/dev/null; }

# stop NAME: SIGTERM, then SIGKILL after 10s.
stop() {
	local f="${STATE}/pids/$1.pid" p i
	[[ -f "${f}" ]] || return 0
	p=$(cat "${f}")
	if kill "${p}" 2>/dev/null; then
		for ((i = 0; i < 100; i++)); do
			alive "${p}" || break
			sleep 0.1
		done
		alive "${p}" && kill -9 "${p}" 2>/dev/null && sleep 0.1
		log "[$(ms)] stopped $1 (pid ${p})"
	fi
	rm -f "${f}"
}

# pids_where PREDICATE: pids of processes for which PREDICATE PID succeeds.
in_kubepods() { grep -q kubepods "/proc/$1/cgroup" 2>/dev/null; }
our_shim() {
	[[ "$(cat "/proc/$1/comm" 2>/dev/null)" == containerd-shim* ]] &&
		tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "${CTR_SOCK}"
}
pids_where() {
	local p
	for p in /proc/[0-9]*; do
		"$1" "${p#/proc/}" && echo "${p#/proc/}"
	done
}

# Keep the logs (pods' too, before their deletion removes them).
if [[ -d "${STATE}/logs" ]]; then
	rm -rf "${OUT}/logs"
	mkdir -p "${OUT}"
	cp -r "${STATE}/logs" "${OUT}/logs" 2>/dev/null
	[[ -d "${STATE}/pod-logs" ]] && cp -rL "${STATE}/pod-logs" "${OUT}/logs/pods" 2>/dev/null
fi

if [[ -d "${STATE}/pids" ]]; then
	# 1. Pods: deleting them lets the kubelet tear them down through the CRI
	# (CNI DEL, unmounts). Bounded: whatever is left is killed below.
	if [[ -f "${STATE}/pids/kube-apiserver.pid" ]] && kc get --raw /readyz >/dev/null 2>&1; then
		kc delete statefulsets,deployments,daemonsets,replicasets,jobs --all -A --wait=false >/dev/null 2>&1
		kc delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1
		for ((i = 0; i < 60; i++)); do
			[[ -z "$(ctr_ tasks ls -q 2>/dev/null)" ]] && break
			sleep 0.25
		done
		log "[$(ms)] pods deleted"
	fi
	stop kube-proxy
	stop kubelet
	# 2. Containers left in containerd: kill their tasks (the shims exit with them).
	for t in $(ctr_ tasks ls -q 2>/dev/null); do
		ctr_ tasks kill -s SIGKILL "${t}" >/dev/null 2>&1
	done
	sleep 0.3
	for t in $(ctr_ tasks ls -q 2>/dev/null); do
		ctr_ tasks rm -f "${t}" >/dev/null 2>&1
	done
	for c in $(ctr_ containers ls -q 2>/dev/null); do
		ctr_ containers rm "${c}" >/dev/null 2>&1
	done
	stop containerd
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
fi

# 3. Stray processes of the cluster, by pid: pod processes and shims.
for pass in 1 2; do
	pids=$( { pids_where in_kubepods; pids_where our_shim; } | sort -u)
	[[ -z "${pids}" ]] && break
	log "killing leftover pod processes and shims: $(echo ${pids})"
	kill -9 ${pids} 2>/dev/null
	sleep 0.5
done

# 4. Mounts (pod volumes, rootfs, shm, network namespaces), deepest first.
awk -v s="${STATE}/" '
	index($2, s) == 1 || $2 ~ /^\/(var\/)?run\/netns\/cni-/ || index($2, "/run/containerd/") == 1 || index($2, "/var/lib/kubelet/") == 1 { print $2 }
' /proc/self/mounts | sort -r | while read -r m; do
	umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null
done
rm -f /run/netns/cni-* /var/run/netns/cni-* 2>/dev/null

# 5. Netfilter: restore the ruleset up.sh recorded (nftables holds both the
# iptables and ip6tables rules of iptables-nft).
H="${STATE}/host"
if [[ -f "${H}/nftables" ]]; then
	if grep -q nf_tables "${H}/iptables-version" 2>/dev/null; then
		nft flush ruleset
		[[ -s "${H}/nftables" ]] && nft -f "${H}/nftables"
	else
		for t in iptables ip6tables; do
			for tab in nat filter mangle raw; do "${t}" -t "${tab}" -F 2>/dev/null; "${t}" -t "${tab}" -X 2>/dev/null; done
			[[ -s "${H}/${t}" ]] && "${t}-restore" <"${H}/${t}"
		done
	fi
fi
# Connection tracking entries of the cluster's addresses.
for net in "${SERVICE_CIDR}" "${CLUSTER_CIDR}" "${NODE_IP}/32"; do
	conntrack -D -s "${net}" >/dev/null 2>&1
	conntrack -D -d "${net}" >/dev/null 2>&1
done

# 6. cgroups the kubelet and runc created.
for h in /sys/fs/cgroup/*/; do
	for k in "${h}"kubepods*; do
		[[ -d "${k}" ]] && find "${k}" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
done

# 7. Links: the pods' veths went with their namespaces.
ip link del "${BRIDGE}" 2>/dev/null
ip link del "${NODE_IF}" 2>/dev/null

# 8. Sysctls the kubelet, kube-proxy and up.sh changed.
if [[ -f "${H}/sysctl" ]]; then
	diff <(sysctl -a 2>/dev/null | grep -Ev "${SYSCTL_VOLATILE}" | sort) <(sort "${H}/sysctl") |
		sed -n 's/^> //p' | while IFS= read -r line; do
		k=${line%% = *}
		v=${line#* = }
		sysctl -qw "${k}=${v}" 2>/dev/null && log "restored ${k} = ${v}"
	done
fi

# 9. Host paths that did not exist before up.sh, and the state (logs kept).
if [[ -f "${H}/created-paths" ]]; then
	while read -r d; do
		[[ -n "${d}" ]] && rm -rf "${d}"
	done <"${H}/created-paths"
fi
if [[ -d "${STATE}" ]]; then
	# The daemons' logs again, now complete.
	[[ -d "${STATE}/logs" ]] && cp -r "${STATE}/logs/." "${OUT}/logs/" 2>/dev/null
	# Anything still mounted below the state would take the host's files with it.
	if awk -v s="${STATE}/" 'index($2, s) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
		die "mounts remain under ${STATE}; not removing it"
	fi
	rm -rf "${STATE}"
fi
rm -f "${KUBECONFIG_OUT}"
log "cluster down in $(ms)"
