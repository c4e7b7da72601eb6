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

# Writes the local cluster's PKI (a CA, the apiserver's serving certificate,
# client certificates, the service-account key pair) with openssl into
# ${STATE}/pki, and a kubeconfig per client into ${STATE}. Run by up.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

P="${STATE}/pki"
mkdir -p "${P}"
cd "${P}"
# ECDSA P-256 keys: as good as RSA here and generated in milliseconds.
ecdsa() { openssl ecparam -name prime256v1 -genkey -noout -out "$1"; }
ecdsa ca.key
openssl req -x509 -new -nodes -key ca.key -subj "/CN=herald-cluster-ca" -days 30 -out ca.crt
ecdsa sa.key
openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
cat >apiserver.ext <<EOT
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.${CLUSTER_DOMAIN},DNS:localhost,DNS:${NODE},IP:127.0.0.1,IP:${API_SERVICE_IP},IP:${NODE_IP}
EOT
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
# cert NAME SUBJECT EXTFILE
cert() {
	ecdsa "$1.key"
	openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$3" -out "$1.crt" 2>/dev/null
}
cert apiserver "/CN=kube-apiserver" apiserver.ext
cert admin "/O=system:masters/CN=admin" client.ext
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client.ext
cert controller-manager "/CN=system:kube-controller-manager" client.ext
cert scheduler "/CN=system:kube-scheduler" client.ext
cert kubelet "/O=system:nodes/CN=system:node:${NODE}" client.ext
cert kube-proxy "/CN=system:kube-proxy" client.ext
for n in admin controller-manager scheduler kubelet kube-proxy; do
	f="${STATE}/${n}.kubeconfig"
	"${KUBECTL}" config set-cluster herald-cluster --certificate-authority=ca.crt --embed-certs --server="https://${NODE_IP}:6443" --kubeconfig="${f}" >/dev/null
	"${KUBECTL}" config set-credentials "${n}" --client-certificate="${n}.crt" --client-key="${n}.key" --embed-certs --kubeconfig="${f}" >/dev/null
	"${KUBECTL}" config set-context herald-cluster --cluster=herald-cluster --user="${n}" --kubeconfig="${f}" >/dev/null
	"${KUBECTL}" config use-context herald-cluster --kubeconfig="${f}" >/dev/null
done
