#!/usr/bin/env bash
# Builds the binaries envtest needs (kube-apiserver, etcd, kubectl) from the Go module
# proxy, because setup-envtest's download host is not reachable from our machines.
# Output goes where kubebuilder and controller-runtime look for it:
#   bin/k8s/<K8S_VERSION>-linux-amd64/{kube-apiserver,etcd,kubectl}
# A second run with the binaries present does nothing.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${ENVTEST_DIR:-$ROOT/bin/k8s/${K8S_VERSION}-$(go env GOOS)-$(go env GOARCH)}
WORK=$ROOT/bin/.envtest-build

if [[ -x $OUT/kube-apiserver && -x $OUT/etcd && -x $OUT/kubectl ]] &&
   "$OUT/kube-apiserver" --version 2>/dev/null | grep -x "Kubernetes v${K8S_VERSION}" >/dev/null; then
  echo "envtest binaries v${K8S_VERSION} already in ${OUT#$ROOT/}"
  exit 0
fi
mkdir -p "$OUT" "$WORK/kubernetes" "$WORK/etcd"
start=$SECONDS

# k8s.io/kubernetes replaces its staging modules with local paths, which `go install`
# refuses; a wrapper module pins each of them to the matching published v0 version.
minor=${K8S_VERSION#*.}; minor=${minor%%.*}
gomod=$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
{
  echo "module envtest-kubernetes"
  echo
  echo "go $(sed -n 's/^go //p' "$gomod")"
  echo
  echo "require k8s.io/kubernetes v${K8S_VERSION}"
  echo
  for m in $staging; do echo "replace $m => $m v0.${K8S_VERSION#*.}"; done
} > "$WORK/kubernetes/go.mod"
cat > "$WORK/kubernetes/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
(
  cd "$WORK/kubernetes"
  echo "resolving k8s.io/kubernetes v${K8S_VERSION} modules"
  go mod tidy >/dev/null
  echo "building kube-apiserver and kubectl (several minutes on a cold cache)"
  go build -trimpath -ldflags "$ldflags" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags "$ldflags" -o "$OUT/kubectl" k8s.io/kubernetes/cmd/kubectl
)

cat > "$WORK/etcd/go.mod" <<GO
module envtest-etcd

go 1.24

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
GO
cat > "$WORK/etcd/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
(
  cd "$WORK/etcd"
  echo "building etcd ${ETCD_VERSION}"
  go mod tidy >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
)

"$OUT/kube-apiserver" --version
"$OUT/etcd" --version | sed -n 1p # sed reads it all: head could SIGPIPE etcd under pipefail
echo "envtest binaries built in $((SECONDS - start))s into ${OUT#$ROOT/}"
