# Herald Makefile (kubebuilder style). Run `make help` for the list of targets.
#
# Only Go (plus make, bash and git) is required: every tool is built from a
# pinned nested module under hack/tools/ into ./bin/.

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

# Timeout for `make test`; envtest suites start a real kube-apiserver + etcd.
TEST_TIMEOUT ?= 25m
# Extra arguments for `go test`, e.g. `make test TEST_ARGS='-run TestFoo -v'`.
TEST_ARGS ?=

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'. The awk command is responsible for reading the
# entire set of makefiles included in this invocation, looking for lines of the
# file as xyz: ## something, and then pretty-format the target and help. Then,
# if there's a line with ##@ something, that gets pretty-printed as a category.
# More info on the usage of ANSI control characters for terminal formatting:
# https://en.wikipedia.org/wiki/ANSI_escape_code#SGR_parameters
# More info on the awk command:
# http://linuxcommand.org/lc3_adv_awk.php

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs, RBAC (ClusterRole herald-manager) and webhook configurations.
	$(CONTROLLER_GEN) rbac:roleName=herald-manager crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-generated
verify-generated: generate manifests ## Fail if generated code or manifests in api/ and config/ are stale.
	@if ! git diff --exit-code --stat -- api/ config/ \
		|| [ -n "$$(git ls-files --others --exclude-standard -- api/ config/)" ]; then \
		git ls-files --others --exclude-standard -- api/ config/ | sed 's/^/untracked: /' >&2; \
		echo "generated files are stale; run make generate manifests" >&2; \
		exit 1; \
	fi

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: envtest ## Run all tests against a local kube-apiserver + etcd (envtest).
	@assets="$$(hack/envtest-assets.sh)"; \
	echo "KUBEBUILDER_ASSETS=$$assets"; \
	KUBEBUILDER_ASSETS="$$assets" go test ./... -count=1 -timeout $(TEST_TIMEOUT) $(TEST_ARGS)

##@ Build

.PHONY: build
build: ## Build the herald and herald-dispatcher binaries into bin/.
	go build -o $(LOCALBIN)/ ./cmd/herald ./cmd/herald-dispatcher

.PHONY: run
run: ## Run herald in dev mode against the sample configuration.
	go run ./cmd/herald dev -f config/samples/dev

.PHONY: clean
clean: ## Remove build outputs (keeps the cached tools and envtest binaries in bin/).
	rm -f $(LOCALBIN)/herald cover.out cover.html

.PHONY: clean-tools
clean-tools: ## Remove everything in bin/, including controller-gen and the envtest binaries.
	rm -rf $(LOCALBIN)

##@ Image

# The herald image: operator, dispatchers and adapters all run it.
VERSION ?= $(shell awk '$$1 == "appVersion:" { gsub(/"/, "", $$2); print $$2 }' charts/herald/Chart.yaml)
IMG_REPO ?= ghcr.io/herald-dev/herald
IMG ?= $(IMG_REPO):$(VERSION)
# The image config/default and the chart refer to by default.
DEFAULT_IMG := ghcr.io/herald-dev/herald:$(VERSION)
CONTAINER_TOOL ?= docker

.PHONY: docker-build
docker-build: ## Build the herald image $(IMG) from the Dockerfile.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the herald image $(IMG).
	$(CONTAINER_TOOL) push $(IMG)

##@ Local cluster (no Docker; root)

# A real single-node Kubernetes on this host: etcd, kube-apiserver,
# controller-manager, scheduler, kubelet, kube-proxy and CoreDNS built from
# the Go module proxy; containerd, runc, CNI plugins and iptables from Debian.
# Runtime state in HERALD_CLUSTER_DIR (default /tmp/herald-cluster);
# kubeconfig, logs and image archives in bin/cluster/

.PHONY: cluster-up
cluster-up: ## Start the local cluster (removing a previous run's leftovers first); kubeconfig in bin/cluster/kubeconfig.
	hack/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and undo every host change it made (processes, iptables, links, cgroups, sysctls, mounts).
	hack/cluster/down.sh

.PHONY: images
images: ## Build the herald, NATS and test images as OCI archives in bin/cluster/images/ (no Docker); import them when the local cluster runs.
	hack/cluster/images.sh

.PHONY: e2e-cluster
e2e-cluster: helm envtest ## Herald end to end on the local cluster: images, cluster-up, helm install, go test -tags cluster ./test/cluster, cluster-down (always); fails if the host is not left as found.
	HELM=$(HELM) hack/cluster/e2e.sh

##@ Deployment

# kubectl of the current context (override, e.g. KUBECTL="kubectl --context kind-herald").
KUBECTL ?= kubectl
# How long undeploy and uninstall wait for the operator to finalize Herald's objects.
FINALIZE_TIMEOUT ?= 2m

# delete-herald-objects deletes every Topic, Subscription and EventSource while
# the operator still runs, so its finalizers delete the JetStream streams and
# consumers; deleting the CRDs or the operator first would leave the objects
# stuck on their finalizers.
define delete-herald-objects
	if $(KUBECTL) get crd topics.eventing.herald.dev >/dev/null 2>&1; then \
		$(KUBECTL) delete eventsources.eventing.herald.dev,subscriptions.eventing.herald.dev,topics.eventing.herald.dev \
			--all --all-namespaces --wait --timeout=$(FINALIZE_TIMEOUT); \
	fi
endef

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubectl context.
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Delete all Herald objects (streams included), then the CRDs.
	@$(delete-herald-objects)
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

.PHONY: deploy
deploy: ## Deploy CRDs, RBAC, the operator and a single-node NATS into herald-system (kubectl apply --server-side -k config/default); IMG overrides the image.
	@if [ "$(IMG)" = "$(DEFAULT_IMG)" ]; then \
		echo "$(KUBECTL) apply --server-side -k config/default"; \
		$(KUBECTL) apply --server-side -k config/default; \
	else \
		echo "$(KUBECTL) kustomize config/default | (image $(IMG)) | $(KUBECTL) apply --server-side -f -"; \
		$(KUBECTL) kustomize config/default | sed 's|$(DEFAULT_IMG)|$(IMG)|g' | $(KUBECTL) apply --server-side -f -; \
	fi

.PHONY: undeploy
undeploy: ## Delete all Herald objects (streams included) while the operator runs, then everything deploy created. NATS's PVC stays.
	@$(delete-herald-objects)
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Helm chart

CHART_DIR := charts/herald

.PHONY: helm-sync
helm-sync: helm-crds helm-rbac ## Copy the generated CRDs and ClusterRole rules into the chart.

.PHONY: helm-crds
helm-crds: ## Copy config/crd/bases into charts/herald/crds (the packaging test fails when they differ).
	rm -f $(CHART_DIR)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART_DIR)/crds/

.PHONY: helm-rbac
helm-rbac: ## Copy config/rbac/role.yaml into the chart, whose ClusterRole takes its rules from it.
	cp config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml

.PHONY: crd-baseline
crd-baseline: ## Snapshot config/crd/bases as the released CRDs the packaging test checks upgrades against (at a release, or to accept a breaking change).
	rm -rf test/packaging/testdata/crd-baseline/$(VERSION)
	mkdir -p test/packaging/testdata/crd-baseline/$(VERSION)
	cp config/crd/bases/*.yaml test/packaging/testdata/crd-baseline/$(VERSION)/

.PHONY: helm-docs
helm-docs: envtest ## Regenerate the table of docs/helm-values.md from the chart's values.schema.json and values.yaml.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go test ./test/packaging -count=1 -run '^TestHelmValuesDoc$$' -args -update

.PHONY: helm-lint
helm-lint: helm ## helm lint --strict the chart with the default, HA, external-NATS and monitoring values.
	$(HELM) lint --strict $(CHART_DIR)
	$(HELM) lint --strict $(CHART_DIR) -f $(CHART_DIR)/ci/ha-values.yaml
	$(HELM) lint --strict $(CHART_DIR) -f $(CHART_DIR)/ci/external-nats-values.yaml
	$(HELM) lint --strict $(CHART_DIR) -f $(CHART_DIR)/ci/monitoring-values.yaml

.PHONY: helm-package
helm-package: helm helm-sync ## Package the chart into bin/charts/.
	$(HELM) package $(CHART_DIR) --destination $(LOCALBIN)/charts

##@ GitOps

ARGOCD_DIR := config/argocd

.PHONY: argocd-cm
argocd-cm: ## Regenerate config/argocd/argocd-cm.yaml (the argocd-cm keys) from config/argocd/health.lua.
	@{ \
		echo "# Argo CD health checks for Herald's kinds, to merge into the argocd-cm ConfigMap:"; \
		echo "#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file $(ARGOCD_DIR)/argocd-cm.yaml"; \
		echo "# Generated from health.lua by make argocd-cm; edit health.lua, not this file."; \
		echo "apiVersion: v1"; \
		echo "kind: ConfigMap"; \
		echo "metadata:"; \
		echo "  name: argocd-cm"; \
		echo "  namespace: argocd"; \
		echo "data:"; \
		for kind in Topic Subscription EventSource; do \
			echo "  resource.customizations.health.eventing.herald.dev_$$kind: |"; \
			sed 's/^./    &/' $(ARGOCD_DIR)/health.lua; \
		done; \
	} > $(ARGOCD_DIR)/argocd-cm.yaml

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(CURDIR)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

## Tool versions, read from the pinned nested modules in hack/tools/.
CONTROLLER_TOOLS_VERSION ?= $(shell awk '$$1 == "require" && $$2 == "sigs.k8s.io/controller-tools" { print $$3 }' hack/tools/controller-gen/go.mod)

## Tool binaries
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen (pinned in hack/tools/controller-gen) if necessary.
$(CONTROLLER_GEN): | $(LOCALBIN)
	@test -n "$(CONTROLLER_TOOLS_VERSION)" || { echo "cannot read controller-tools version from hack/tools/controller-gen/go.mod" >&2; exit 1; }
	cd hack/tools/controller-gen && GOWORK=off go build -trimpath -mod=readonly \
		-ldflags "-X sigs.k8s.io/controller-tools/pkg/version.version=$(CONTROLLER_TOOLS_VERSION)" \
		-o "$@.tmp" sigs.k8s.io/controller-tools/cmd/controller-gen
	mv -f "$@.tmp" "$@"

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl for envtest if necessary; prints the KUBEBUILDER_ASSETS directory.
	@hack/envtest-assets.sh

HELM_VERSION ?= $(shell awk '$$1 == "require" && $$2 == "helm.sh/helm/v3" { print $$3 }' hack/tools/helm/go.mod)
# The Kubernetes minor version helm assumes without a cluster (helm template,
# helm lint): that of the client-go it is built with, as helm's own Makefile does.
HELM_K8S_MINOR ?= $(shell awk '$$1 == "k8s.io/client-go" { split($$2, v, "."); print v[2] }' hack/tools/helm/go.mod)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)

.PHONY: helm
helm: $(HELM) ## Build helm (pinned in hack/tools/helm) if necessary.
$(HELM): | $(LOCALBIN)
	@test -n "$(HELM_VERSION)" -a -n "$(HELM_K8S_MINOR)" || { echo "cannot read helm or client-go version from hack/tools/helm/go.mod" >&2; exit 1; }
	cd hack/tools/helm && GOWORK=off CGO_ENABLED=0 go build -trimpath -mod=readonly \
		-ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR) \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR)" \
		-o "$@.tmp" helm.sh/helm/v3/cmd/helm
	mv -f "$@.tmp" "$@"
