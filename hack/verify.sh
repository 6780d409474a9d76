#!/usr/bin/env bash
# Fails when a tracked file is not what the tools would make of it: go.mod/go.sum not tidy,
# Go code not gofmt'ed, or CRDs, RBAC and deepcopy not what `make manifests generate` writes
# from the markers; then runs go vet. `make test` runs this first. It regenerates in place,
# so after a failure `git diff` shows what to commit.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
if ! out=$(go mod tidy -diff 2>&1); then
  echo "go.mod/go.sum are not tidy: run go mod tidy" >&2
  echo "$out" >&2
  failed=1
fi

unformatted=$(git ls-files -z '*.go' | xargs -0 gofmt -l)
if [[ -n $unformatted ]]; then
  echo "gofmt would change: $(echo $unformatted): run make fmt" >&2
  failed=1
fi

generated() {
  { git ls-files 'config/crd/bases/*' 'config/rbac/role.yaml' '*zz_generated*'
    git ls-files --others --exclude-standard 'config/crd/bases/*' '*zz_generated*'
  } | sort -u | xargs -r sha256sum
}
before=$(generated)
make -s manifests generate
after=$(generated)
if [[ $before != "$after" ]]; then
  echo "make manifests generate changed generated files; commit them:" >&2
  diff <(echo "$before") <(echo "$after") | sed -n 's/^> [0-9a-f]*  /  /p' >&2
  failed=1
fi

go vet ./...
exit $failed
