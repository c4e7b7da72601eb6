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

# Builds every binary the local cluster runs, from the Go module proxy only,
# and prints the directory holding the Kubernetes ones on stdout:
#
#   kube-apiserver, etcd, kubectl   hack/envtest-assets.sh (bin/k8s/<k8s>-etcd-<etcd>/)
#   kubelet, kube-proxy,
#   kube-controller-manager,
#   kube-scheduler                  the same wrapper module (hack/tools/kube), same directory
#   coredns                         hack/tools/coredns, bin/cluster/coredns-<version>
#   nats-server                     hack/tools/nats-server, bin/cluster/nats-server-<version>
#
# Binaries that exist are reused; each is built under a temporary name and
# renamed into place. All progress goes to stderr.
set -euo pipefail
exec 3>&1 1>&2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
log() { echo "cluster-bins: $*" >&2; }
die() { log "error: $*"; exit 1; }

mod_version() {
	awk -v mod="$2" '
		$1 == "require" && $2 == mod { print $3; exit }
		$1 == mod && $2 ~ /^v/ { print $2; exit }
	' "$1"
}

ASSETS_DIR="$("${ROOT}/hack/envtest-assets.sh")"
K8S_VERSION="$(mod_version "${ROOT}/hack/tools/kube/go.mod" k8s.io/kubernetes)"
COREDNS_VERSION="$(mod_version "${ROOT}/hack/tools/coredns/go.mod" github.com/coredns/coredns)"
NATS_VERSION="$(mod_version "${ROOT}/hack/tools/nats-server/go.mod" github.com/nats-io/nats-server/v2)"
[[ -n "${K8S_VERSION}" && -n "${COREDNS_VERSION}" && -n "${NATS_VERSION}" ]] || die "cannot read versions from hack/tools/*/go.mod"
TOOLS_DIR="${CLUSTER_BIN_DIR:-${ROOT}/bin/cluster}"
mkdir -p "${TOOLS_DIR}"

export GOWORK=off CGO_ENABLED=0
GO_BUILD_FLAGS=(-trimpath -mod=readonly -buildvcs=false)

k8s_minor="${K8S_VERSION#v1.}"
k8s_minor="${k8s_minor%%.*}"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${k8s_minor} -X ${pkg}.gitTreeState=clean"
done

# build <output> <module dir> <ldflags> <package>
build() {
	local out=$1 dir=$2 ldflags=$3 pkg=$4 start=${SECONDS}
	[[ -x "${out}" ]] && return 0
	log "building $(basename "${out}") (a cold build takes minutes)..."
	(cd "${dir}" && go build "${GO_BUILD_FLAGS[@]}" -ldflags "${ldflags}" -o "${out}.tmp" "${pkg}")
	mv -f "${out}.tmp" "${out}"
	log "built $(basename "${out}") in $((SECONDS - start))s"
}

# One go build at a time: a kubelet link alone takes a GB or two.
for b in kubelet kube-proxy kube-controller-manager kube-scheduler; do
	build "${ASSETS_DIR}/${b}" "${ROOT}/hack/tools/kube" "${kube_ldflags}" "k8s.io/kubernetes/cmd/${b}"
done
build "${TOOLS_DIR}/coredns-${COREDNS_VERSION}" "${ROOT}/hack/tools/coredns" \
	"-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}" github.com/coredns/coredns
build "${TOOLS_DIR}/nats-server-${NATS_VERSION}" "${ROOT}/hack/tools/nats-server" "-s -w" github.com/nats-io/nats-server/v2

echo "${ASSETS_DIR}" >&3
