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

# Starts a real single-node Kubernetes cluster on this host, without Docker:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
# kubelet, kube-proxy and CoreDNS, all built from the Go module proxy (see
# build-bins.sh) except containerd, runc, the CNI plugins and iptables, which
# come from Debian and are installed when missing. Needs root.
#
# First removes whatever a previous run left (down.sh), then records the
# host's state (sysctls, netfilter ruleset, host paths) for down.sh to
# restore. Writes the kubeconfig to bin/cluster/kubeconfig. On failure it
# runs down.sh itself (HERALD_CLUSTER_KEEP=1 keeps the wreck for a look).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T0=$(date +%s%N)
ts() { log "[$(( ($(date +%s%N) - T0) / 1000000 ))ms] $*"; }

[[ $(id -u) == 0 ]] || die "needs root (it starts a kubelet and changes iptables)"

# 1. Host packages.
ensure_packages

# 2. Binaries and the cluster's own images (cached in bin/).
"${HACK}/build-bins.sh" >/dev/null
"${HACK}/images.sh" base
ts "binaries and base images ready"

# 3. Whatever a previous run left.
if [[ -e "${STATE}" ]] || ip link show "${NODE_IF}" >/dev/null 2>&1 || ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1; then
	log "removing the state of a previous run"
	"${HACK}/down.sh"
fi
for port in 6443 10250 10248 10256 10249 10257 10259 "${ETCD_CLIENT_PORT}" "${ETCD_PEER_PORT}"; do
	if ss -Htln "sport = :${port}" | grep -q .; then
		die "port ${port} is in use by a process that is not this cluster's: $(ss -Htlnp "sport = :${port}")"
	fi
done

on_exit() {
	local rc=$?
	if ((rc != 0)); then
		log "cluster-up failed; last lines of the logs:"
		for f in "${STATE}"/logs/*.log; do
			[[ -f "${f}" ]] && { echo "---- ${f##*/}"; tail -n 15 "${f}"; } >&2
		done
		if [[ "${HERALD_CLUSTER_KEEP:-0}" != 1 ]]; then
			"${HACK}/down.sh" || true
		fi
	fi
}
trap on_exit EXIT

# 4. Record the host as it is, for down.sh.
mkdir -p "${STATE}"/{pids,logs,host,cni/net.d,cni/ipam,kubelet/root,kubelet/pki,pod-logs,etcd,containerd}
chmod 0700 "${STATE}"
sysctl -a 2>/dev/null | grep -Ev "${SYSCTL_VOLATILE}" >"${STATE}/host/sysctl" || true
nft list ruleset >"${STATE}/host/nftables"
for t in iptables ip6tables; do "${t}-save" >"${STATE}/host/${t}"; done
iptables -V >"${STATE}/host/iptables-version"
: >"${STATE}/host/created-paths"
for d in "${HOST_PATHS[@]}"; do
	[[ -e "${d}" ]] || echo "${d}" >>"${STATE}/host/created-paths"
done

# 5. Configuration and PKI.
for f in containerd.toml kubelet.yaml kube-proxy.yaml coredns.yaml; do
	render "${HACK}/config/${f}" >"${STATE}/${f}"
done
for f in 10-bridge.conflist 99-loopback.conf; do
	render "${HACK}/config/${f}" >"${STATE}/cni/net.d/${f}"
done
echo "# no upstream resolver: the cluster's DNS answers only for its own names" >"${STATE}/resolv.conf"
"${HACK}/pki.sh"
ts "configuration and PKI written"

# 6. Control plane.
ip link add "${NODE_IF}" type veth peer name "${NODE_IF_PEER}"
ip addr add "${NODE_IP}/32" dev "${NODE_IF}"
ip link set "${NODE_IF_PEER}" up
ip link set "${NODE_IF}" up
# The cluster's address ranges stay on this host. Without these routes a
# packet to a ClusterIP that kube-proxy has not programmed yet (a Service
# created a moment ago) would follow the default route out of the machine;
# with them it goes to our veth and dies there. The pod network's own route
# (the bridge, a /24) is more specific than the cluster range.
ip route add "${SERVICE_CIDR}" dev "${NODE_IF}" src "${NODE_IP}"
ip route add "${CLUSTER_CIDR}" dev "${NODE_IF}" src "${NODE_IP}"
P="${STATE}/pki"
start etcd "${KUBE_BIN}/etcd" --name herald-cluster --data-dir "${STATE}/etcd" \
	--listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
	--listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
	--initial-cluster "herald-cluster=http://127.0.0.1:${ETCD_PEER_PORT}" --listen-metrics-urls "http://127.0.0.1:${ETCD_METRICS_PORT}" \
	--unsafe-no-fsync
start kube-apiserver "${KUBE_BIN}/kube-apiserver" --advertise-address="${NODE_IP}" --bind-address="${NODE_IP}" --secure-port=6443 \
	--etcd-servers="http://127.0.0.1:${ETCD_CLIENT_PORT}" --service-cluster-ip-range="${SERVICE_CIDR}" \
	--tls-cert-file="${P}/apiserver.crt" --tls-private-key-file="${P}/apiserver.key" --client-ca-file="${P}/ca.crt" \
	--kubelet-client-certificate="${P}/apiserver-kubelet-client.crt" --kubelet-client-key="${P}/apiserver-kubelet-client.key" \
	--service-account-key-file="${P}/sa.pub" --service-account-signing-key-file="${P}/sa.key" \
	--service-account-issuer="https://kubernetes.default.svc.${CLUSTER_DOMAIN}" \
	--kubelet-preferred-address-types=InternalIP,Hostname \
	--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true
wait_for 120 "kube-apiserver /readyz" kc get --raw /readyz
ts "kube-apiserver ready"
start kube-controller-manager "${KUBE_BIN}/kube-controller-manager" --kubeconfig="${STATE}/controller-manager.kubeconfig" \
	--authentication-kubeconfig="${STATE}/controller-manager.kubeconfig" --authorization-kubeconfig="${STATE}/controller-manager.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
	--service-account-private-key-file="${P}/sa.key" --root-ca-file="${P}/ca.crt" \
	--cluster-signing-cert-file="${P}/ca.crt" --cluster-signing-key-file="${P}/ca.key" \
	--allocate-node-cidrs=true --cluster-cidr="${CLUSTER_CIDR}" --node-cidr-mask-size=24 --service-cluster-ip-range="${SERVICE_CIDR}"
start kube-scheduler "${KUBE_BIN}/kube-scheduler" --kubeconfig="${STATE}/scheduler.kubeconfig" \
	--authentication-kubeconfig="${STATE}/scheduler.kubeconfig" --authorization-kubeconfig="${STATE}/scheduler.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false

# 7. Node.
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
start containerd /usr/bin/containerd --config "${STATE}/containerd.toml"
wait_for 30 "containerd" ctr_ version
"${HACK}/images.sh" import
ts "containerd running, images imported"
start kubelet "${KUBE_BIN}/kubelet" --config="${STATE}/kubelet.yaml" --kubeconfig="${STATE}/kubelet.kubeconfig" \
	--root-dir="${STATE}/kubelet/root" --cert-dir="${STATE}/kubelet/pki" --hostname-override="${NODE}" --node-ip="${NODE_IP}" --v=1
start kube-proxy "${KUBE_BIN}/kube-proxy" --config="${STATE}/kube-proxy.yaml"
node_ready() { kc get node "${NODE}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -q True; }
wait_for 90 "node ${NODE} Ready" node_ready
ts "node Ready"

# 8. Cluster DNS.
wait_for 60 "the default ServiceAccount" kc get serviceaccount default
kc apply -f "${STATE}/coredns.yaml" >/dev/null
kc -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
ts "CoreDNS ready"

mkdir -p "${OUT}"
cp "${STATE}/admin.kubeconfig" "${KUBECONFIG_OUT}.tmp"
mv -f "${KUBECONFIG_OUT}.tmp" "${KUBECONFIG_OUT}"
ts "cluster up: export KUBECONFIG=${KUBECONFIG_OUT#"${PWD}/"}"
