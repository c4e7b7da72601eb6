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

# Shared settings of the local single-node cluster (hack/cluster/*.sh). Sourced,
# not run.
#
# The cluster is a host-wide thing (one node address, fixed ports, iptables
# rules, cgroups), so its runtime state lives in one host-wide directory,
# HERALD_CLUSTER_DIR, not in the clone: cluster-up in any clone finds and
# removes what a run from another clone left behind.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
HACK="${ROOT}/hack/cluster"
# Runtime state: pid files, logs, PKI, etcd, containerd, kubelet, host snapshot.
STATE="${HERALD_CLUSTER_DIR:-/tmp/herald-cluster}"
# What the user keeps: kubeconfig, image archives, tool binaries.
OUT="${ROOT}/bin/cluster"
KUBECONFIG_OUT="${OUT}/kubeconfig"
IMAGES_DIR="${OUT}/images"

NODE=herald-node
# The node's address lives on a veth pair of ours: pods cannot reach the
# host's 127.0.0.1, and the apiserver refuses a loopback address as the
# kubernetes Service's endpoint. (This kernel has no dummy link type.)
NODE_IF=herald0
NODE_IF_PEER=herald0p
NODE_IP=10.200.0.1
BRIDGE=herald-br0
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
CLUSTER_CIDR=10.244.0.0/16
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
CLUSTER_DOMAIN=cluster.local
# etcd listens on loopback only, away from its usual ports so that an envtest
# etcd running beside the cluster cannot collide with it.
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
ETCD_METRICS_PORT=12381

# Debian packages the node needs.
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack nftables iproute2 gettext-base openssl)
CNI_BIN_DIR=/usr/lib/cni
RUNC=/usr/sbin/runc
# Host paths that the kubelet, containerd and the CNI plugins write to no
# matter how they are configured; down.sh removes those that did not exist
# before up.sh (recorded in ${STATE}/host/created-paths).
HOST_PATHS=(/var/log/pods /var/log/containers /var/lib/cni /run/containerd /var/lib/kubelet /run/netns /var/run/netns /etc/cni /opt/cni)

CTR_SOCK="${STATE}/containerd/containerd.sock"

log() { echo "cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_packages installs whichever of PACKAGES is missing (apt-get), then
# checks that every command the node needs is there.
ensure_packages() {
	local p c missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${p}")
	done
	if ((${#missing[@]})); then
		log "installing ${missing[*]} (apt-get)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	for c in containerd ctr "${RUNC}" iptables ip6tables nft conntrack envsubst openssl; do
		command -v "${c}" >/dev/null || die "${c} not found"
	done
	[[ -x "${CNI_BIN_DIR}/bridge" ]] || die "no CNI plugins in ${CNI_BIN_DIR}"
}

# mod_version <go.mod> <module path>
mod_version() {
	awk -v mod="$2" '
		$1 == "require" && $2 == mod { print $3; exit }
		$1 == mod && $2 ~ /^v/ { print $2; exit }
	' "$1"
}

K8S_VERSION="$(mod_version "${ROOT}/hack/tools/kube/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(mod_version "${ROOT}/hack/tools/etcd/go.mod" go.etcd.io/etcd/server/v3)"
COREDNS_VERSION="$(mod_version "${ROOT}/hack/tools/coredns/go.mod" github.com/coredns/coredns)"
NATS_VERSION="$(mod_version "${ROOT}/hack/tools/nats-server/go.mod" github.com/nats-io/nats-server/v2)"
KUBE_BIN="${ENVTEST_BIN_DIR:-${ROOT}/bin/k8s}/${K8S_VERSION}-etcd-${ETCD_VERSION}"
KUBECTL="${KUBE_BIN}/kubectl"

# Images the cluster itself needs (the sandbox and DNS), and those of Herald's
# end-to-end tests. Tags name what was built; pods use imagePullPolicy Never
# or IfNotPresent, so nothing is ever pulled.
PAUSE_IMAGE=localhost/herald-cluster/pause:1.0
COREDNS_IMAGE=localhost/herald-cluster/coredns:${COREDNS_VERSION#v}
HERALD_IMAGE_REPO=localhost/herald
HERALD_IMAGE_TAG=cluster
NATS_IMAGE_REPO=localhost/nats
NATS_IMAGE_TAG=${NATS_VERSION#v}
SUBSCRIBER_IMAGE=localhost/herald-cluster/subscriber:1.0

kc() { "${KUBECTL}" --kubeconfig "${STATE}/admin.kubeconfig" "$@"; }
ctr_() { ctr -a "${CTR_SOCK}" -n k8s.io "$@"; }

# start NAME cmd...: in the background, in its own session, with a log and a
# pid file.
start() {
	local n=$1
	shift
	setsid "$@" >"${STATE}/logs/${n}.log" 2>&1 </dev/null &
	echo $! >"${STATE}/pids/${n}.pid"
	log "started ${n} (pid $!)"
}

# wait_for SECONDS WHAT cmd...: retry cmd every 0.25s.
wait_for() {
	local timeout=$1 what=$2 i
	shift 2
	for ((i = 0; i < timeout * 4; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.25
	done
	die "timed out after ${timeout}s waiting for ${what}"
}

# render FILE: the template with ${VAR}s of this file substituted.
render() {
	STATE="${STATE}" NODE="${NODE}" NODE_IP="${NODE_IP}" BRIDGE="${BRIDGE}" POD_CIDR="${POD_CIDR}" \
		POD_GATEWAY="${POD_GATEWAY}" CLUSTER_CIDR="${CLUSTER_CIDR}" DNS_SERVICE_IP="${DNS_SERVICE_IP}" \
		CLUSTER_DOMAIN="${CLUSTER_DOMAIN}" PAUSE_IMAGE="${PAUSE_IMAGE}" COREDNS_IMAGE="${COREDNS_IMAGE}" \
		CNI_BIN_DIR="${CNI_BIN_DIR}" RUNC="${RUNC}" \
		envsubst '${STATE} ${NODE} ${NODE_IP} ${BRIDGE} ${POD_CIDR} ${POD_GATEWAY} ${CLUSTER_CIDR} ${DNS_SERVICE_IP} ${CLUSTER_DOMAIN} ${PAUSE_IMAGE} ${COREDNS_IMAGE} ${CNI_BIN_DIR} ${RUNC}' <"$1"
}

# Sysctl keys whose values change by themselves; never compared or restored.
SYSCTL_VOLATILE='^(kernel\.random\.|kernel\.ns_last_pid|fs\.(dentry-state|inode-nr|inode-state|file-nr|aio-nr|quota\.)|net\.netfilter\.nf_conntrack_count|kernel\.pty\.nr|net\.ipv4\.tcp_fastopen_key|kernel\.tainted|fs\.binfmt_misc\.|dev\.cdrom\.)'
