#!/usr/bin/env bash
# The whole product on one machine: a real etcd + kube-apiserver, the CloudStack simulator
# whose hypervisor turns attachments into loop devices, the manager and the node agent as
# real processes, and the samples applied with kubectl.
#
#   hack/demo.sh          run, show, wait for Ctrl-C, then tear down
#   hack/demo.sh --once   run, show, tear down, exit non-zero if any step failed
#
# Needs root (loop devices, mkfs, mount). Logs go to files; their paths are printed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ONCE=false
[[ ${1:-} == --once ]] && ONCE=true

K8S_VERSION=${K8S_VERSION:-1.37.2}
ASSETS=${KUBEBUILDER_ASSETS:-$ROOT/bin/k8s/$K8S_VERSION-linux-amd64}
DEMO_DIR=${DEMO_DIR:-$ROOT/bin/demo}
MOUNT_ROOT=${DEMO_MOUNT_ROOT:-/mnt/migration}
SIM_ADDR=127.0.0.1:8080 # the address config/samples names
OMA_VM_ID=9c1e4b7d-2a6f-4d3c-8e5b-000000000001
WAIT_TIMEOUT=${DEMO_WAIT_TIMEOUT:-180s}

LOGS=$DEMO_DIR/logs
KUBECONFIG=$DEMO_DIR/kubeconfig
export KUBECONFIG
KUBECTL=$ASSETS/kubectl
PIDS=()
FAILED=0
T0=$SECONDS

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; STEP_T=$SECONDS; }
ok() { printf '    ok (%ds)\n' $((SECONDS - STEP_T)); }
fail() { printf '    FAILED: %s\n' "$*" >&2; FAILED=1; }
kc() { "$KUBECTL" "$@"; }

# start NAME CMD... runs a process in the background with its log in $LOGS/NAME.log.
start() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=("$!:$name")
  echo "    $name: pid $!, log $LOGS/$name.log"
}

# wait_for DESC SECONDS CMD... polls CMD until it succeeds.
wait_for() {
  local desc=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then fail "timed out waiting for $desc"; return 1; fi
    sleep 0.2
  done
}

stop_all() {
  local i pid name
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]%%:*} name=${PIDS[i]#*:}
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && { echo "    $name did not stop; killing it"; kill -KILL "$pid"; }
      wait "$pid" 2>/dev/null
      echo "    stopped $name"
    fi
  done
  PIDS=()
}

teardown() {
  trap - INT TERM
  step "Deleting the MigrationVolumes (unmount, detach, delete in that order)"
  if kc get crd migrationvolumes.ossea.migratekit.io >/dev/null 2>&1; then
    kc delete mv --all --wait=true --timeout=120s || fail "deleting the volumes"
    kc get osc,mv -o wide 2>/dev/null
    echo "    CloudStack data volumes left: $(sim_volumes | wc -l) (deletionPolicy Retain keeps job-4711-disk2, detached)"
    sim_volumes | sed 's/^/      /'
    kc delete osc --all --wait=true --timeout=60s >/dev/null || fail "deleting the OsseaConfig"
    ok
  fi

  step "Stopping every process"
  stop_all
  ok

  step "Checking that nothing is left behind"
  # Only what is the demo's own: mounts below its mount root, loop devices backed by its
  # files, its own binaries. Another program's mounts (a test's scratch directory may hold
  # a .../mnt/migration/... too) are none of its business.
  local mounts loops procs
  mounts=$(findmnt -rn -o TARGET | awk -v root="$MOUNT_ROOT/" 'index($0, root) == 1' || true)
  loops=$(losetup --list --noheadings --raw -o NAME,BACK-FILE 2>/dev/null | awk -v dir="$DEMO_DIR/" 'index($2, dir) == 1' || true)
  procs=$(pgrep -a -f "^$ROOT/bin/(localapi|cloudsim|manager|node-agent) " || true)
  [[ -z $mounts ]] || fail "mounts left: $mounts"
  [[ -z $loops ]] || fail "loop devices left: $loops"
  [[ -z $procs ]] || fail "processes left: $procs"
  [[ -z $mounts && -z $loops && -z $procs ]] && echo "    no mounts under $MOUNT_ROOT, no loop devices of $DEMO_DIR, no processes"
  ok

  if ((FAILED)); then
    printf '\n\033[1mDemo FAILED after %ds.\033[0m Logs: %s\n' $((SECONDS - T0)) "$LOGS"
    exit 1
  fi
  printf '\n\033[1mDemo finished in %ds.\033[0m\n' $((SECONDS - T0))
  exit 0
}

# sim_volumes lists the simulator's data volumes, one line each.
sim_volumes() {
  curl -fsS "http://$SIM_ADDR/admin/state" |
    jq -r '.volumes[] | select(.type == "DATADISK") | "\(.id) \(.name) \(.state) vm=\(.virtualMachineId // "-")"'
}

abort() {
  fail "$1"
  teardown
}

[[ $(id -u) == 0 ]] || { echo "the demo needs root: it makes loop devices, formats and mounts them" >&2; exit 1; }

step "Preparing $DEMO_DIR"
rm -rf "$DEMO_DIR"
mkdir -p "$LOGS" "$DEMO_DIR/by-id" "$DEMO_DIR/disks" "$MOUNT_ROOT"
cat >"$DEMO_DIR/world.yaml" <<EOF
# The simulator's default world, with the OMA VM served locally so that attachments
# become loop devices with by-id links.
accounts:
- {name: admin, apiKey: cloudsim-api-key, secretKey: cloudsim-secret-key, admin: true}
zones:
- {id: 0a7c5b1e-3d2f-4c8b-9e6a-000000000001, name: sim-zone-1}
diskOfferings:
- {id: 5f3d9a2c-8b1e-4f6d-a7c4-000000000001, name: Custom, customized: true}
virtualMachines:
- id: $OMA_VM_ID
  name: oma
  zone: 0a7c5b1e-3d2f-4c8b-9e6a-000000000001
  local: {byIdDir: $DEMO_DIR/by-id, backingDir: $DEMO_DIR/disks}
EOF
ok
trap 'abort "interrupted during setup"' INT TERM

step "Starting etcd and kube-apiserver"
start apiserver "$ROOT/bin/localapi" --assets "$ASSETS" --kubeconfig-out "$KUBECONFIG"
wait_for "the API server" 60 test -s "$KUBECONFIG" || abort "the API server did not start"
ok

step "Installing the CRDs with kubectl apply"
kc apply -k "$ROOT/config/crd" | sed 's/^/    /' || abort "kubectl apply of the CRDs"
kc wait --for=condition=Established crd --all --timeout=30s >/dev/null || abort "the CRDs were not established"
ok

step "Starting the CloudStack simulator at http://$SIM_ADDR/client/api"
start cloudsim "$ROOT/bin/cloudsim" --listen "$SIM_ADDR" --world "$DEMO_DIR/world.yaml" --job-latency 1s
wait_for "the simulator" 20 curl -fsS "http://$SIM_ADDR/admin/state" || abort "the simulator did not start"
ok

step "Starting the manager and the node agent"
start manager "$ROOT/bin/manager" --kubeconfig "$KUBECONFIG" --health-probe-bind-address 127.0.0.1:18081 \
  --metrics-bind-address 127.0.0.1:18080 --revalidate-interval 1m
start node-agent "$ROOT/bin/node-agent" --kubeconfig "$KUBECONFIG" --oma-vm-id "$OMA_VM_ID" --node-name demo-node \
  --by-id-dir "$DEMO_DIR/by-id" --mount-root "$MOUNT_ROOT" --health-probe-bind-address 127.0.0.1:18082 \
  --metrics-bind-address 0
wait_for "the manager" 30 curl -fsS http://127.0.0.1:18081/readyz || abort "the manager did not become ready"
wait_for "the node agent" 30 curl -fsS http://127.0.0.1:18082/readyz || abort "the node agent did not become ready"
ok

step "Applying config/samples: a Secret, an OsseaConfig and three MigrationVolumes of one job"
kc apply -k "$ROOT/config/samples" | sed 's/^/    /' || abort "kubectl apply of the samples"
ok

step "Waiting until all are Ready (kubectl wait)"
kc wait --for=condition=Ready osc/ossea --timeout="$WAIT_TIMEOUT" | sed 's/^/    /' || abort "the OsseaConfig did not become Ready"
kc wait --for=condition=Ready mv --all --timeout="$WAIT_TIMEOUT" | sed 's/^/    /' || abort "the volumes did not become Ready"
ok

step "What you have now"
kc get osc,mv -o wide
echo
echo "Mounts (findmnt):"
findmnt -l -o TARGET,SOURCE,FSTYPE,SIZE | awk -v root="$MOUNT_ROOT/" 'NR == 1 || index($1, root) == 1 { print "    " $0 }'
echo
echo "Block-mode volume (published, not mounted):"
kc get mv job-4711-disk2 -o jsonpath='    {.status.devicePath} -> ' && readlink -f "$DEMO_DIR/by-id/$(basename "$(kc get mv job-4711-disk2 -o jsonpath='{.status.devicePath}')")"
echo
echo "Use kubectl against it:  export KUBECONFIG=$KUBECONFIG"
echo "Logs:                    $LOGS"

if $ONCE; then
  teardown
fi
trap teardown INT TERM
printf '\nRunning. Press Ctrl-C to delete the volumes and stop.\n'
while true; do sleep 1; done
