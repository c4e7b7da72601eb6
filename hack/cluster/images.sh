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

# Builds the local cluster's images without a container engine: each is a
# one-layer OCI archive written by hack/cluster/mkoci from a static binary
# (CGO_ENABLED=0), kept in bin/cluster/images/. When the cluster runs, the
# archives are imported into its containerd (namespace k8s.io), where pods
# use them with imagePullPolicy Never or IfNotPresent; cluster-up imports
# them too.
#
#   images.sh          every image, imported when the cluster runs
#   images.sh base     only the cluster's own (pause, CoreDNS); no import
#   images.sh import   import the archives already built
#
# Images:
#   localhost/herald:cluster          herald and herald-dispatcher in /usr/local/bin, PATH
#                                     set, so command ["herald"] and ["herald-dispatcher"]
#                                     work (as in the Dockerfile)
#   localhost/nats:<version>          nats-server from hack/tools/nats-server, entrypoint
#                                     nats-server, like the official image
#   localhost/herald-cluster/subscriber:1.0   test/cluster/subscriber (e2e-cluster)
#   localhost/herald-cluster/pause:1.0        hack/cluster/pause, the sandbox image
#   localhost/herald-cluster/coredns:<v>      CoreDNS from hack/tools/coredns
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

what=${1:-all}
mkdir -p "${IMAGES_DIR}"
export CGO_ENABLED=0 GOWORK=off
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

MKOCI="${OUT}/mkoci"
(cd "${ROOT}" && go build -trimpath -o "${MKOCI}" ./hack/cluster/mkoci)

# Files every image gets: a passwd/group naming the users Herald's and NATS's
# pods run as, and the host's CA bundle for TLS clients.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnats:x:1000:1000:nats:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"${WORK}/passwd"
printf 'root:x:0:\nnats:x:1000:\nnonroot:x:65532:\n' >"${WORK}/group"
COMMON=("${WORK}/passwd:/etc/passwd" "${WORK}/group:/etc/group")
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
	COMMON+=("/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt")
fi
PATH_ENV=PATH=/usr/local/bin:/usr/bin:/bin

# gobuild OUTPUT PACKAGE: a static binary from the root module.
gobuild() { (cd "${ROOT}" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$1" "$2"); }

base() {
	gobuild "${WORK}/pause" ./hack/cluster/pause
	"${MKOCI}" -name "${PAUSE_IMAGE}" -o "${IMAGES_DIR}/pause.tar" -entrypoint /pause "${WORK}/pause:/pause"
	"${HACK}/build-bins.sh" >/dev/null
	"${MKOCI}" -name "${COREDNS_IMAGE}" -o "${IMAGES_DIR}/coredns.tar" -entrypoint /coredns \
		"${COMMON[@]}" "${OUT}/coredns-${COREDNS_VERSION}:/coredns"
}

herald() {
	gobuild "${WORK}/herald" ./cmd/herald
	gobuild "${WORK}/herald-dispatcher" ./cmd/herald-dispatcher
	"${MKOCI}" -name "${HERALD_IMAGE_REPO}:${HERALD_IMAGE_TAG}" -o "${IMAGES_DIR}/herald.tar" \
		-entrypoint /usr/local/bin/herald -env "${PATH_ENV}" -user 65532:65532 -dir /tmp:1777 \
		"${COMMON[@]}" "${WORK}/herald:/usr/local/bin/herald" \
		"${WORK}/herald-dispatcher:/usr/local/bin/herald-dispatcher"
	gobuild "${WORK}/subscriber" ./test/cluster/subscriber
	"${MKOCI}" -name "${SUBSCRIBER_IMAGE}" -o "${IMAGES_DIR}/subscriber.tar" \
		-entrypoint /usr/local/bin/subscriber -env "${PATH_ENV}" -user 65532:65532 \
		"${COMMON[@]}" "${WORK}/subscriber:/usr/local/bin/subscriber"
	"${HACK}/build-bins.sh" >/dev/null
	"${MKOCI}" -name "${NATS_IMAGE_REPO}:${NATS_IMAGE_TAG}" -o "${IMAGES_DIR}/nats.tar" \
		-entrypoint /usr/local/bin/nats-server -env "${PATH_ENV}" -dir /data:1777 \
		"${COMMON[@]}" "${OUT}/nats-server-${NATS_VERSION}:/usr/local/bin/nats-server"
}

import() {
	if ! ctr_ version >/dev/null 2>&1; then
		log "the cluster is not running; cluster-up imports the archives in ${IMAGES_DIR#"${ROOT}/"}"
		return 0
	fi
	local f
	for f in "${IMAGES_DIR}"/*.tar; do
		ctr_ images import "${f}" >/dev/null
		log "imported $(basename "${f}")"
	done
}

case "${what}" in
base) base ;;
import) import ;;
all)
	base
	herald
	import
	;;
*) die "usage: images.sh [all|base|import]" ;;
esac
