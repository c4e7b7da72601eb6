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

# Builds the binaries controller-runtime's envtest needs (kube-apiserver and
# etcd, plus a matching kubectl) from source with nothing but the Go
# toolchain, and prints the absolute path of the directory holding them on
# stdout, for use as KUBEBUILDER_ASSETS:
#
#   KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)" go test ./...
#
# Versions are pinned by the nested modules hack/tools/kube (k8s.io/kubernetes)
# and hack/tools/etcd (go.etcd.io/etcd/server/v3); the output directory is
# keyed by both, e.g. bin/k8s/v1.37.1-etcd-v3.6.16/. Binaries that already
# exist are reused, so a warm run returns immediately. Each binary is built
# under a temporary name and renamed into place, so an interrupted build
# never leaves a truncated binary behind.
#
# A cold build takes a few minutes and ~3 GB of RAM (linking kube-apiserver).
# All progress output goes to stderr; stdout carries only the directory.
#
# Environment:
#   ENVTEST_BIN_DIR  parent of the version-keyed directory (default: <repo>/bin/k8s)
#   ENVTEST_KUBECTL  set to 0 to skip building kubectl (default: 1)
set -euo pipefail

# Keep the real stdout on fd 3 for the final answer; everything else
# (including go build chatter) goes to stderr.
exec 3>&1 1>&2

log() { echo "envtest-assets: $*" >&2; }
die() { log "error: $*"; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
KUBE_MOD_DIR="${ROOT}/hack/tools/kube"
ETCD_MOD_DIR="${ROOT}/hack/tools/etcd"

# mod_version <go.mod> <module path>: the required version, read straight from
# go.mod (no go invocation, so the warm path stays instant).
mod_version() {
	awk -v mod="$2" '
		$1 == "require" && $2 == mod { print $3; exit }
		$1 == mod && $2 ~ /^v/ { print $2; exit }
	' "$1"
}

K8S_VERSION="$(mod_version "${KUBE_MOD_DIR}/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(mod_version "${ETCD_MOD_DIR}/go.mod" go.etcd.io/etcd/server/v3)"
[[ -n "${K8S_VERSION}" ]] || die "cannot find k8s.io/kubernetes in ${KUBE_MOD_DIR}/go.mod"
[[ -n "${ETCD_VERSION}" ]] || die "cannot find go.etcd.io/etcd/server/v3 in ${ETCD_MOD_DIR}/go.mod"

BIN_PARENT="${ENVTEST_BIN_DIR:-${ROOT}/bin/k8s}"
[[ "${BIN_PARENT}" == /* ]] || BIN_PARENT="${PWD}/${BIN_PARENT}"
ASSETS_DIR="${BIN_PARENT}/${K8S_VERSION}-etcd-${ETCD_VERSION}"

want=(kube-apiserver etcd)
if [[ "${ENVTEST_KUBECTL:-1}" != "0" ]]; then
	want+=(kubectl)
fi

missing() {
	local b
	for b in "${want[@]}"; do
		[[ -x "${ASSETS_DIR}/${b}" ]] || echo "${b}"
	done
}

# Fast path: everything is already there.
if [[ -z "$(missing)" ]]; then
	echo "${ASSETS_DIR}" >&3
	exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not installed or not in PATH"
mkdir -p "${ASSETS_DIR}"
ASSETS_DIR="$(cd "${ASSETS_DIR}" && pwd -P)"

# Serialize concurrent invocations (e.g. parallel make jobs) so they don't all
# spend minutes building the same binaries. flock is optional; the atomic
# rename below keeps things correct without it.
if command -v flock >/dev/null 2>&1; then
	exec 9>"${ASSETS_DIR}/.lock"
	if ! flock -n 9; then
		log "waiting for another build in ${ASSETS_DIR} to finish..."
		flock 9
	fi
	# We hold the lock, so any leftover build directory is from a killed run.
	rm -rf "${ASSETS_DIR}"/.build.*
fi

TMP_DIR="$(mktemp -d "${ASSETS_DIR}/.build.XXXXXX")"
trap 'rm -rf "${TMP_DIR}"' EXIT
# Make signals go through the EXIT trap so the temporary directory is removed.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Build in the nested modules only, never in a go.work that may exist above.
export GOWORK=off CGO_ENABLED=0
GO_BUILD_FLAGS=(-trimpath -mod=readonly -buildvcs=false)

# install_bin <name>: atomically move a freshly built binary into place.
install_bin() {
	[[ -x "${TMP_DIR}/$1" ]] || die "go build did not produce $1"
	chmod 0755 "${TMP_DIR}/$1"
	mv -f "${TMP_DIR}/$1" "${ASSETS_DIR}/$1"
	log "installed ${ASSETS_DIR}/$1"
}

k8s_minor="${K8S_VERSION#v1.}"
k8s_minor="${k8s_minor%%.*}"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
	kube_ldflags+=" -X ${pkg}.gitMajor=1"
	kube_ldflags+=" -X ${pkg}.gitMinor=${k8s_minor}"
	kube_ldflags+=" -X ${pkg}.gitTreeState=clean"
done

# One binary per go build: keeps peak memory at a single link (kube-apiserver
# is the big one) and the shared packages come from the build cache anyway.
for b in $(missing); do
	start=${SECONDS}
	case "${b}" in
	etcd)
		log "building etcd ${ETCD_VERSION}..."
		(cd "${ETCD_MOD_DIR}" && go build "${GO_BUILD_FLAGS[@]}" -ldflags "-s -w" -o "${TMP_DIR}/etcd" .)
		;;
	*)
		log "building ${b} ${K8S_VERSION} (a cold build takes minutes)..."
		(cd "${KUBE_MOD_DIR}" && go build "${GO_BUILD_FLAGS[@]}" -ldflags "${kube_ldflags}" -o "${TMP_DIR}/${b}" "k8s.io/kubernetes/cmd/${b}")
		;;
	esac
	log "built ${b} in $((SECONDS - start))s"
	install_bin "${b}"
done

[[ -z "$(missing)" ]] || die "still missing after build: $(missing | tr '\n' ' ')"
echo "${ASSETS_DIR}" >&3
