// Package packaging holds the tests of Herald's installation artifacts: the
// Helm chart (charts/herald), the kustomize configuration (config/default),
// the Argo CD health check (config/argocd), the Dockerfile and the install
// documentation. The tests render the chart with the Helm SDK, build
// config/default with the kubectl that envtest's assets carry, and apply
// every object to a real kube-apiserver with server-side dry-run.
package packaging
