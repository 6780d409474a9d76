#!/usr/bin/env bash
# The whole product on one machine: a real etcd + kube-apiserver, the CloudStack simulator
# whose hypervisor turns attachments into loop devices, two OMA VMs of one pool, the manager
# and one node agent per OMA as real processes, and the samples applied with kubectl. It ends
# with a cut-over: the job's disks handed to a stopped target VM, its root first.
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
# The two OMA VMs config/samples names (OsseaConfigs ossea and ossea-b). Both run here, so
# each gets what a separate machine would have to itself: a by-id directory, a backing
# directory and a mount root ($MOUNT_ROOT/<name>, where a real OMA has /mnt/migration).
OMA_NAMES=(oma oma-2)
OMA_IDS=(9c1e4b7d-2a6f-4d3c-8e5b-000000000001 9c1e4b7d-2a6f-4d3c-8e5b-000000000002)
OMA_SLOTS=6 # data disks per OMA VM, CloudStack's usual limit
# The migrated VM that job-4712's disks are handed to. It has no local block: what is
# attached to it lives in the simulator's state only, no loop device, as it would be on a
# hypervisor that is not this machine.
TARGET_NAME=database-server-prod-02
TARGET_ID=3f6b8d2a-9e4c-4a7f-b1d5-000000000001
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

# start_agent I starts the node agent of the I-th OMA VM, as if on that VM's own node, with
# its health probe on port 18082+I. It runs with the admin kubeconfig, so the agent's
# admission policy (config/agent) does not apply to it here; the e2e suite runs its agents
# as the agent's ServiceAccount with tokens bound to pods on their nodes (test/world,
# InstallAccess and ServiceAccountKubeconfig).
start_agent() {
  local i=$1 name=${OMA_NAMES[$1]}
  start "node-agent-$name" "$ROOT/bin/node-agent" --kubeconfig "$KUBECONFIG" --oma-vm-id "${OMA_IDS[i]}" \
    --node-name "demo-$name" --by-id-dir "$DEMO_DIR/$name/by-id" --mount-root "$MOUNT_ROOT/$name" \
    --health-probe-bind-address "127.0.0.1:$((18082 + i))" --metrics-bind-address 0
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
  step "Deleting the job, then the MigrationVolumes (unmount, detach, delete in that order)"
  if kc get crd migrationvolumes.ossea.migratekit.io >/dev/null 2>&1; then
    # The job before the volumes: its own volumes are its to delete, and with --wait it
    # returns only once they are gone.
    kc delete mj --all --wait=true --timeout=120s || fail "deleting the job"
    kc delete mv --all --wait=true --timeout=120s || fail "deleting the volumes"
    kc get osc,mj,mv -o wide 2>/dev/null
    # Left by design: Retain keeps job-4711-disk2 (detached); a handed-off volume is the
    # target's now, so deleting its object leaves it attached there; the placeholder root it
    # replaced is not the operator's to delete.
    if [[ -n ${CUT_OVER:-} ]]; then
      echo "    CloudStack volumes left: $(sim_volumes | wc -l), by design: job-4711-disk2 (deletionPolicy Retain, detached)," \
        "job-4712's three disks (handed off: attached to $TARGET_NAME, theirs now) and the placeholder root they replaced (detached, kept)"
    else
      echo "    CloudStack volumes left: $(sim_volumes | wc -l) (deletionPolicy Retain keeps job-4711-disk2, detached)"
    fi
    sim_volumes | sed 's/^/      /'
    if [[ -n ${CUT_OVER:-} ]]; then
      local on
      on=$(target_volumes | wc -l)
      ((on == 3)) || fail "after the job was deleted $TARGET_NAME holds $on volumes, want job-4712's 3"
    fi
    kc delete osc --all --wait=true --timeout=60s >/dev/null || fail "deleting the OsseaConfigs"
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

# show_placement JOB prints where the job went (status.placement) and where its disks are.
show_placement() {
  local cfg vm
  cfg=$(kc get mj "$1" -o jsonpath='{.status.placement.osseaConfigName}')
  vm=$(kc get mj "$1" -o jsonpath='{.status.placement.omaVirtualMachineID}')
  echo "$1 went to OsseaConfig $cfg, OMA VM $vm ($(oma_name "$vm")). Its disks:"
  kc get mj "$1" -o json | jq -r '.status.disks[] | "    \(.name) \(.phase) \(.mountPath // .devicePath)"'
}

# oma_name ID is the demo's name of the OMA VM of that id.
oma_name() {
  local i
  for i in "${!OMA_IDS[@]}"; do
    [[ ${OMA_IDS[i]} == "$1" ]] && { echo "${OMA_NAMES[i]}"; return; }
  done
  echo "not an OMA of this demo"
}

# sim_volumes lists the simulator's volumes but the OMA VMs' own roots, one line each, with
# what its tags say about why it is there.
sim_volumes() {
  curl -fsS "http://$SIM_ADDR/admin/state" |
    jq -r --arg target "$TARGET_ID" '.volumes[] | select(.type == "DATADISK" or .virtualMachineId == $target) |
      (.tags // [] | from_entries) as $t |
      "\(.id) \(.name) \(.type) vm=\(.virtualMachineId // "-")" +
      if $t["ossea.migratekit.io/handed-off-to"] then " handed off"
      elif $t["ossea.migratekit.io/replaced-by"] then " replaced by \($t["ossea.migratekit.io/replaced-by"])"
      elif $t["ossea.migratekit.io/retained"] == "true" then " retained"
      else "" end'
}

# target_volumes lists the target VM's volumes by device id, with their type and the disk
# of the job each was.
target_volumes() {
  curl -fsS "http://$SIM_ADDR/admin/state" |
    jq -r --arg vm "$TARGET_ID" '[.volumes[] | select(.virtualMachineId == $vm)] | sort_by(.deviceId)[] |
      (.tags // [] | from_entries) as $t |
      "device \(.deviceId) \(.type) \(.id) \(.name) \($t["ossea.migratekit.io/disk-name"] // "(placeholder root of its template)")"'
}

abort() {
  fail "$1"
  teardown
}

[[ $(id -u) == 0 ]] || { echo "the demo needs root: it makes loop devices, formats and mounts them" >&2; exit 1; }

step "Preparing $DEMO_DIR"
rm -rf "$DEMO_DIR"
mkdir -p "$LOGS" "$MOUNT_ROOT"
cat >"$DEMO_DIR/world.yaml" <<EOF
# The simulator's default world with a second OMA VM, both served locally so that
# attachments become loop devices with by-id links.
accounts:
- {name: admin, apiKey: cloudsim-api-key, secretKey: cloudsim-secret-key, admin: true}
zones:
- {id: 0a7c5b1e-3d2f-4c8b-9e6a-000000000001, name: sim-zone-1}
diskOfferings:
- {id: 5f3d9a2c-8b1e-4f6d-a7c4-000000000001, name: Custom, customized: true}
virtualMachines:
EOF
for i in "${!OMA_NAMES[@]}"; do
  name=${OMA_NAMES[i]}
  mkdir -p "$DEMO_DIR/$name/by-id" "$DEMO_DIR/$name/disks"
  cat >>"$DEMO_DIR/world.yaml" <<EOF
- id: ${OMA_IDS[i]}
  name: $name
  zone: 0a7c5b1e-3d2f-4c8b-9e6a-000000000001
  maxDataVolumes: $OMA_SLOTS
  local: {byIdDir: $DEMO_DIR/$name/by-id, backingDir: $DEMO_DIR/$name/disks}
EOF
done
cat >>"$DEMO_DIR/world.yaml" <<EOF
# The target of the cut-over: stopped, as a root replacement needs, with the placeholder
# root its template gave it at device 0.
- id: $TARGET_ID
  name: $TARGET_NAME
  zone: 0a7c5b1e-3d2f-4c8b-9e6a-000000000001
  state: Stopped
  hypervisor: KVM
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

step "Starting the manager and one node agent per OMA VM"
start manager "$ROOT/bin/manager" --kubeconfig "$KUBECONFIG" --health-probe-bind-address 127.0.0.1:18081 \
  --metrics-bind-address 127.0.0.1:18080 --revalidate-interval 1m --drift-interval 5s
for i in "${!OMA_NAMES[@]}"; do start_agent "$i"; done
wait_for "the manager" 30 curl -fsS http://127.0.0.1:18081/readyz || abort "the manager did not become ready"
for i in "${!OMA_NAMES[@]}"; do
  wait_for "the node agent of ${OMA_NAMES[i]}" 30 curl -fsS "http://127.0.0.1:$((18082 + i))/readyz" ||
    abort "the node agent of ${OMA_NAMES[i]} did not become ready"
done
ok

step "Applying config/samples: a Secret, a pool of two OsseaConfigs and three MigrationVolumes of one job"
kc apply -k "$ROOT/config/samples" | sed 's/^/    /' || abort "kubectl apply of the samples"
ok

step "Waiting until all are Ready (kubectl wait)"
kc wait --for=condition=Ready osc --all --timeout="$WAIT_TIMEOUT" | sed 's/^/    /' || abort "the OsseaConfigs did not become Ready"
kc wait --for=condition=Ready mv --all --timeout="$WAIT_TIMEOUT" | sed 's/^/    /' || abort "the volumes did not become Ready"
ok

step "Applying a MigrationJob of three disks to pool prod, and waiting until it is Ready"
kc apply -f "$ROOT/config/samples/ossea_v1alpha1_migrationjob.yaml" | sed 's/^/    /' || abort "kubectl apply of the job"
kc wait --for=condition=Ready mj/job-4712 --timeout="$WAIT_TIMEOUT" | sed 's/^/    /' || abort "the job did not become Ready"
ok

step "What you have now"
kc get osc,mv -o wide
echo
kc get mj -o wide
echo
echo "The same through the kubectl plugin (kubectl ossea jobs, kubectl ossea orphans):"
"$ROOT/bin/kubectl-ossea" --kubeconfig "$KUBECONFIG" jobs | sed 's/^/    /' || fail "kubectl ossea jobs"
"$ROOT/bin/kubectl-ossea" --kubeconfig "$KUBECONFIG" orphans 2>&1 | sed 's/^/    /' || fail "kubectl ossea orphans"
echo
show_placement job-4712
echo
echo "Mounts (findmnt):"
findmnt -l -o TARGET,SOURCE,FSTYPE,SIZE | awk -v root="$MOUNT_ROOT/" 'NR == 1 || index($1, root) == 1 { print "    " $0 }'
echo
echo "Block-mode volume (published, not mounted):"
dev=$(kc get mv job-4711-disk2 -o jsonpath='{.status.devicePath}')
echo "    $dev -> $(readlink -f "$dev")"
echo
echo "The target VM $TARGET_NAME ($TARGET_ID), $(curl -fsS "http://$SIM_ADDR/admin/state" |
  jq -r --arg vm "$TARGET_ID" '.virtualMachines[] | select(.id == $vm) | "\(.state), \(.hypervisor)"'):"
target_volumes | sed 's/^/    /'

step "Cutting job-4712 over to $TARGET_NAME, disk0 as its root (kubectl patch, kubectl wait)"
kc patch mj job-4712 --type merge \
  -p "{\"spec\":{\"cutover\":{\"targetVirtualMachineID\":\"$TARGET_ID\",\"rootDisk\":\"disk0\"}}}" | sed 's/^/    /' ||
  abort "kubectl patch of the job's cutover"
CUT_OVER=1
kc wait --for=jsonpath='{.status.phase}'=HandedOff mj/job-4712 --timeout="$WAIT_TIMEOUT" | sed 's/^/    /' ||
  abort "the job was not handed off"
ok
echo
kc get mj -o wide
echo
echo "job-4712's disks on the target (status.disks[].targetDeviceID):"
kc get mj job-4712 -o json | jq -r '.status.disks[] | "    \(.name) \(.phase) device \(.targetDeviceID)"'
echo
echo "The target VM's volumes now (the simulator's /admin/state):"
target_volumes | sed 's/^/    /'
echo "Its former root, kept:"
curl -fsS "http://$SIM_ADDR/admin/state" |
  jq -r '.volumes[] | (.tags // [] | from_entries) as $t | select($t["ossea.migratekit.io/replaced-by"]) |
    "    \(.id) \(.name) \(.type) vm=\(.virtualMachineId // "-") replaced-by=\($t["ossea.migratekit.io/replaced-by"])"'
oma=$(oma_name "$(kc get mj job-4712 -o jsonpath='{.status.placement.omaVirtualMachineID}')")
left=$(findmnt -rn -o TARGET | awk -v root="$MOUNT_ROOT/$oma/job-4712/" 'index($0, root) == 1')
[[ -z $left ]] || fail "the agent of $oma still mounts job-4712's disks after the hand-off: $left"
echo "Mounts of job-4712 left on $oma: $(printf '%s' "$left" | grep -c .)"
echo
echo "Use kubectl against it:  export KUBECONFIG=$KUBECONFIG"
echo "Logs:                    $LOGS"

if $ONCE; then
  teardown
fi
trap teardown INT TERM
printf '\nRunning. Press Ctrl-C to delete the volumes and stop.\n'
while true; do sleep 1; done
