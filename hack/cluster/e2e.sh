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

# make e2e-cluster: Herald end to end on a real local cluster.
#
#   host snapshot → images (make images) → cluster-up → helm install of
#   charts/herald with its bundled NATS → go test -tags cluster ./test/cluster
#   → cluster-down (always, also on failure or interrupt) → host snapshot,
#   which must equal the first one.
#
# Environment: HELM (default bin/helm-<version>), E2E_CLUSTER_ARGS (extra go
# test arguments, e.g. -run 'TestCluster/deliver'), HERALD_CLUSTER_KEEP=1
# (leave the cluster running afterwards; skips the host comparison).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || die "needs root (it runs a kubelet)"
HELM="${HELM:?set HELM to the helm binary (make e2e-cluster does)}"
T0=$(date +%s)
elapsed() { echo "$(($(date +%s) - T0))s"; }
mkdir -p "${OUT}"
RESULTS="${OUT}/e2e-results.txt"

# Packages first: installing them is not a change cluster-down undoes, and
# the snapshot should be of the host the cluster will run on.
ensure_packages
# Start from a host without the cluster, so that the snapshot is the host's.
if [[ -e "${STATE}" ]]; then
	log "a previous cluster is still there; taking it down first"
	"${HACK}/down.sh"
fi
"${HACK}/host-state.sh" >"${OUT}/host-before.txt"

finish() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ "${HERALD_CLUSTER_KEEP:-0}" == 1 ]]; then
		log "HERALD_CLUSTER_KEEP=1: the cluster keeps running (make cluster-down removes it)"
		exit "${rc}"
	fi
	log "[$(elapsed)] taking the cluster down"
	"${HACK}/down.sh" || rc=1
	"${HACK}/host-state.sh" >"${OUT}/host-after.txt"
	if ! diff -u "${OUT}/host-before.txt" "${OUT}/host-after.txt" >"${OUT}/host-diff.txt"; then
		log "the host differs from before cluster-up:"
		cat "${OUT}/host-diff.txt" >&2
		rc=1
	else
		log "host state after cluster-down equals the state before cluster-up"
	fi
	if [[ -f "${RESULTS}" ]]; then
		grep -h 'FIGURES\|^--- \|^    --- \|^ok\|^FAIL' "${RESULTS}" >&2 || true
	fi
	log "e2e-cluster $([[ ${rc} == 0 ]] && echo passed || echo FAILED) in $(elapsed)"
	exit "${rc}"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${HACK}/images.sh"
log "[$(elapsed)] images built"
"${HACK}/up.sh"
log "[$(elapsed)] cluster up"
# The same herald image under a second tag: helm-upgrade changes image.tag to
# it, which makes the operator roll every dispatcher.
ctr_ images tag --force "${HERALD_IMAGE_REPO}:${HERALD_IMAGE_TAG}" "${HERALD_IMAGE_REPO}:${HERALD_IMAGE_TAG}-next" >/dev/null

export KUBECONFIG="${KUBECONFIG_OUT}"
RELEASE=herald
NAMESPACE=herald-system
"${HELM}" install "${RELEASE}" "${ROOT}/charts/herald" -n "${NAMESPACE}" --create-namespace \
	-f "${HACK}/herald-values.yaml" --wait --timeout 5m >/dev/null
log "[$(elapsed)] chart installed"

cd "${ROOT}"
KUBECTL="${KUBECTL}" HELM="${HELM}" HERALD_RELEASE="${RELEASE}" HERALD_NAMESPACE="${NAMESPACE}" \
	HERALD_VALUES="${HACK}/herald-values.yaml" HERALD_CHART="${ROOT}/charts/herald" \
	HERALD_UPGRADE_TAG="${HERALD_IMAGE_TAG}-next" \
	go test -tags cluster ./test/cluster -count=1 -v -timeout 30m ${E2E_CLUSTER_ARGS:-} 2>&1 | tee "${RESULTS}"
log "[$(elapsed)] tests done"
