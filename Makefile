# ossea-operator. `make test` runs every test; `make help` lists the targets.

K8S_VERSION ?= 1.37.2
ETCD_VERSION ?= v3.6.16
CONTROLLER_TOOLS_VERSION ?= v0.23.0

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
ENVTEST_DIR ?= $(LOCALBIN)/k8s/$(K8S_VERSION)-$(shell go env GOOS)-$(shell go env GOARCH)
export KUBEBUILDER_ASSETS ?= $(ENVTEST_DIR)

# The tests mount loop devices and run real API servers; packages run one at a time so two
# cores are not oversubscribed and devices do not race.
GO_TEST_FLAGS ?= -p 1 -count=1 -timeout 45m

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-12s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: controller-gen ## Fail if go.mod, gofmt or the generated files are not what the tools make; go vet.
	hack/verify.sh

.PHONY: test
test: deps verify envtest ## Install what the tests need, verify, and run every test.
	go test $(GO_TEST_FLAGS) ./...

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build bin/manager, bin/node-agent, bin/cloudsim and the kubectl plugin bin/kubectl-ossea.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/node-agent ./cmd/node-agent
	go build -o $(LOCALBIN)/cloudsim ./cmd/cloudsim
	go build -o $(LOCALBIN)/kubectl-ossea ./cmd/kubectl-ossea

.PHONY: demo
demo: deps build envtest ## Run the operator end to end on the local world (DEMO_ARGS=--once to exit after showing it).
	go build -o $(LOCALBIN)/localapi ./hack/localapi
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) hack/demo.sh $(DEMO_ARGS)

##@ Benchmarks

# make bench BENCH_ARGS="--scenario control-plane --n 100" for a quick run; see
# `go run ./test/bench -h` for the knobs.
BENCH_ARGS ?= --scenario all
CHAOS_ARGS ?=

.PHONY: bench
bench: deps envtest ## Measure the operator on the local world: control plane, full path, steady state (BENCH_ARGS).
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) go run ./test/bench $(BENCH_ARGS)

.PHONY: chaos
chaos: deps envtest ## Faults and kills while 60 volumes (CHAOS_ARGS=--jobs: 20 jobs in waves; --cutover: half cut over) come and go, seeds 1-5; zero invariant violations or it fails.
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) go run ./test/chaos $(CHAOS_ARGS)

##@ Tools

.PHONY: deps
deps: ## Install the system commands the tests and the demo run (hack/deps.txt), from Debian's packages.
	@hack/install-deps.sh

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN): Makefile
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	@touch $@

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl from source into bin/k8s/.
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) ENVTEST_DIR=$(ENVTEST_DIR) hack/build-envtest.sh
