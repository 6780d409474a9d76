package controllers

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/testkit"
)

// Credentials of the accounts in the test world. Distinctive values, so a leak into a log
// line, an event or a status is found by a plain substring search.
const (
	tenantAPIKey    = "tenant-api-key-LEAKCHECK-4f1c"
	tenantSecretKey = "tenant-secret-key-LEAKCHECK-9b2e"
	ownerAPIKey     = "owner-api-key-LEAKCHECK-77aa"
	ownerSecretKey  = "owner-secret-key-LEAKCHECK-5d0d"
	wrongSecretKey  = "wrong-secret-key-LEAKCHECK-0000"

	fixedOfferingID = "6e2a1b3c-4d5e-4f60-8a1b-000000000002"
	otherVMID       = "7d1c2b3a-4e5f-4a6b-9c7d-000000000003"
)

// testWorld is the default world plus: a non-admin "tenant" account, an "owner" account
// whose VM the tenant cannot see, and a fixed-size disk offering.
func testWorld(w *cloudsim.World) {
	w.Accounts = append(w.Accounts,
		cloudsim.Account{Name: "tenant", APIKey: tenantAPIKey, SecretKey: tenantSecretKey},
		cloudsim.Account{Name: "owner", APIKey: ownerAPIKey, SecretKey: ownerSecretKey},
	)
	for i := range w.VirtualMachines {
		w.VirtualMachines[i].Account = "tenant"
	}
	w.VirtualMachines = append(w.VirtualMachines, cloudsim.VirtualMachine{
		ID: otherVMID, Name: "owner-oma", Zone: cloudsim.DefaultZoneID, Account: "owner",
	})
	w.DiskOfferings = append(w.DiskOfferings, cloudsim.DiskOffering{
		ID: fixedOfferingID, Name: "Fixed 20GB", DiskSizeGB: 20,
	})
}

func credentials(ns, name, apiKey, secretKey string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"apiKey": apiKey, "secretKey": secretKey},
	}
}

func newConfig(ns, name, url string) *osseav1.OsseaConfig {
	return &osseav1.OsseaConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: osseav1.OsseaConfigSpec{
			APIURL:               url,
			CredentialsSecretRef: osseav1.LocalObjectReference{Name: name + "-credentials"},
			Zone:                 cloudsim.DefaultZoneName,
			OMAVirtualMachineID:  cloudsim.DefaultOMAVMID,
		},
	}
}

// waitReady waits until the controller has acted on the current generation and Ready has
// the wanted status and reason, and returns the object as it then was.
func waitReady(t *testing.T, key client.ObjectKey, want metav1.ConditionStatus, reason string) *osseav1.OsseaConfig {
	t.Helper()
	cfg := &osseav1.OsseaConfig{}
	testkit.Eventually(t, 30*time.Second, func() string {
		if err := k8s.Get(testCtx, key, cfg); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(cfg.Status.Conditions, osseav1.ConditionReady)
		switch {
		case cfg.Status.ObservedGeneration != cfg.Generation:
			return fmt.Sprintf("observedGeneration %d, generation %d", cfg.Status.ObservedGeneration, cfg.Generation)
		case c == nil:
			return "no Ready condition yet"
		case c.Status != want || c.Reason != reason:
			return fmt.Sprintf("Ready=%s reason %s (%s), want %s %s", c.Status, c.Reason, c.Message, want, reason)
		}
		return ""
	})
	return cfg
}

func update(t *testing.T, obj client.Object, change func()) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err.Error()
		}
		change()
		if err := k8s.Update(testCtx, obj); err != nil {
			return err.Error()
		}
		return ""
	})
}

// TestConfigReasons provokes every failure Reason for real, checks that it is reported with
// a message and the right Stalled state, then fixes the cause by editing the Secret or the
// spec (or, for a VM state, CloudStack itself) and sees Ready turn True without a restart.
func TestConfigReasons(t *testing.T) {
	plain := startSim(t, false, testWorld)
	secure := startSim(t, true, testWorld)
	closedURL := closedPortURL(t)

	cases := []struct {
		name    string
		reason  string
		stalled bool
		// setup returns the config and Secret to create (Secret may be nil).
		setup func(ns string) (*osseav1.OsseaConfig, *corev1.Secret)
		fix   func(t *testing.T, cfg *osseav1.OsseaConfig, secret *corev1.Secret)
	}{{
		name: "wrong secret key", reason: osseav1.ReasonUnauthorized, stalled: true,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			return newConfig(ns, "wrongkey", plain.url), credentials(ns, "wrongkey-credentials", tenantAPIKey, wrongSecretKey)
		},
		fix: func(t *testing.T, _ *osseav1.OsseaConfig, s *corev1.Secret) {
			update(t, s, func() { s.Data["secretKey"] = []byte(tenantSecretKey) })
		},
	}, {
		name: "missing Secret", reason: osseav1.ReasonSecretMissing, stalled: true,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			return newConfig(ns, "nosecret", plain.url), nil
		},
		fix: func(t *testing.T, cfg *osseav1.OsseaConfig, _ *corev1.Secret) {
			if err := k8s.Create(testCtx, credentials(cfg.Namespace, "nosecret-credentials", tenantAPIKey, tenantSecretKey)); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "Secret without secretKey", reason: osseav1.ReasonSecretInvalid, stalled: true,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			s := credentials(ns, "nokey-credentials", tenantAPIKey, "")
			delete(s.StringData, "secretKey")
			return newConfig(ns, "nokey", plain.url), s
		},
		fix: func(t *testing.T, _ *osseav1.OsseaConfig, s *corev1.Secret) {
			update(t, s, func() { s.Data["secretKey"] = []byte(tenantSecretKey) })
		},
	}, {
		name: "closed port", reason: osseav1.ReasonUnreachable, stalled: false,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			return newConfig(ns, "closed", closedURL), credentials(ns, "closed-credentials", tenantAPIKey, tenantSecretKey)
		},
		fix: func(t *testing.T, cfg *osseav1.OsseaConfig, _ *corev1.Secret) {
			update(t, cfg, func() { cfg.Spec.APIURL = plain.url })
		},
	}, {
		name: "self-signed TLS without caBundle", reason: osseav1.ReasonTLSError, stalled: true,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			return newConfig(ns, "tls", secure.url), credentials(ns, "tls-credentials", tenantAPIKey, tenantSecretKey)
		},
		fix: func(t *testing.T, cfg *osseav1.OsseaConfig, _ *corev1.Secret) {
			ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.srv.Certificate().Raw}))
			update(t, cfg, func() { cfg.Spec.CABundle = ca })
		},
	}, {
		name: "wrong zone", reason: osseav1.ReasonZoneNotFound, stalled: true,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			cfg := newConfig(ns, "zone", plain.url)
			cfg.Spec.Zone = "no-such-zone"
			return cfg, credentials(ns, "zone-credentials", tenantAPIKey, tenantSecretKey)
		},
		fix: func(t *testing.T, cfg *osseav1.OsseaConfig, _ *corev1.Secret) {
			update(t, cfg, func() { cfg.Spec.Zone = cloudsim.DefaultZoneID })
		},
	}, {
		// The VM exists but belongs to an account the credentials do not reach; the fix is
		// the owner's credentials, since omaVirtualMachineID is immutable.
		name: "unknown VM id", reason: osseav1.ReasonOMAVMNotFound, stalled: true,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			cfg := newConfig(ns, "vm", plain.url)
			cfg.Spec.OMAVirtualMachineID = otherVMID
			return cfg, credentials(ns, "vm-credentials", tenantAPIKey, tenantSecretKey)
		},
		fix: func(t *testing.T, _ *osseav1.OsseaConfig, s *corev1.Secret) {
			update(t, s, func() {
				s.Data["apiKey"], s.Data["secretKey"] = []byte(ownerAPIKey), []byte(ownerSecretKey)
			})
		},
	}, {
		name: "fixed-size offering", reason: osseav1.ReasonDiskOfferingInvalid, stalled: true,
		setup: func(ns string) (*osseav1.OsseaConfig, *corev1.Secret) {
			cfg := newConfig(ns, "offering", plain.url)
			cfg.Spec.DiskOfferingID = fixedOfferingID
			return cfg, credentials(ns, "offering-credentials", tenantAPIKey, tenantSecretKey)
		},
		fix: func(t *testing.T, cfg *osseav1.OsseaConfig, _ *corev1.Secret) {
			update(t, cfg, func() { cfg.Spec.DiskOfferingID = cloudsim.DefaultDiskOfferingID })
		},
	}}

	var all []client.Object
	var logs []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			mgr := startManager(t, ns)
			t.Cleanup(func() { logs = append(logs, mgr.logs.String()) })
			cfg, secret := tc.setup(ns)
			if secret != nil {
				if err := k8s.Create(testCtx, secret); err != nil {
					t.Fatal(err)
				}
				all = append(all, secret)
			}
			if err := k8s.Create(testCtx, cfg); err != nil {
				t.Fatal(err)
			}
			all = append(all, cfg)

			got := waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionFalse, tc.reason)
			ready := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionReady)
			t.Logf("Ready=False %s: %s", ready.Reason, ready.Message)
			if len(ready.Message) < 20 {
				t.Errorf("Ready message %q is too short to tell a person what to fix", ready.Message)
			}
			if s := meta.IsStatusConditionTrue(got.Status.Conditions, osseav1.ConditionStalled); s != tc.stalled {
				t.Errorf("Stalled=%v, want %v (conditions %+v)", s, tc.stalled, got.Status.Conditions)
			}
			if !tc.stalled && !meta.IsStatusConditionTrue(got.Status.Conditions, osseav1.ConditionReconciling) {
				t.Errorf("a retried failure should keep Reconciling=True: %+v", got.Status.Conditions)
			}
			assertKstatus(t, got, map[bool]status.Status{true: status.FailedStatus, false: status.InProgressStatus}[tc.stalled])

			if secret != nil {
				if err := k8s.Get(testCtx, client.ObjectKeyFromObject(secret), secret); err != nil {
					t.Fatal(err)
				}
			}
			tc.fix(t, got, secret)
			fixed := waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionTrue, osseav1.ReasonConnected)
			assertConnectedStatus(t, fixed)
		})
	}
	assertNoLeak(t, strings.Join(logs, "\n"), all, tenantSecretKey, ownerSecretKey, wrongSecretKey, tenantAPIKey, ownerAPIKey)
}

// TestConfigVMStates: a stopped OMA VM is usable; a destroyed one is not, and the config
// recovers once the VM is back, on the periodic re-check alone.
func TestConfigVMStates(t *testing.T) {
	s := startSim(t, false, testWorld)
	ns := newNamespace(t)
	startManager(t, ns)
	cfg := newConfig(ns, "states", s.url)
	if err := k8s.Create(testCtx, credentials(ns, "states-credentials", tenantAPIKey, tenantSecretKey)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVMState(cloudsim.DefaultOMAVMID, "Stopped"); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(testCtx, cfg); err != nil {
		t.Fatal(err)
	}
	got := waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionTrue, osseav1.ReasonConnected)
	if got.Status.OMAVirtualMachineState != "Stopped" {
		t.Errorf("omaVirtualMachineState = %q, want Stopped", got.Status.OMAVirtualMachineState)
	}

	if err := s.SetVMState(cloudsim.DefaultOMAVMID, "Destroyed"); err != nil {
		t.Fatal(err)
	}
	got = waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionFalse, osseav1.ReasonOMAVMNotUsable)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, osseav1.ConditionStalled) {
		t.Errorf("a destroyed OMA VM needs a person: want Stalled=True, got %+v", got.Status.Conditions)
	}
	if got.Status.OMAVirtualMachineState != "Destroyed" {
		t.Errorf("omaVirtualMachineState = %q, want Destroyed", got.Status.OMAVirtualMachineState)
	}

	if err := s.SetVMState(cloudsim.DefaultOMAVMID, "Running"); err != nil {
		t.Fatal(err)
	}
	got = waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionTrue, osseav1.ReasonConnected)
	if got.Status.OMAVirtualMachineState != "Running" {
		t.Errorf("omaVirtualMachineState = %q, want Running", got.Status.OMAVirtualMachineState)
	}
}

// TestConfigKstatusAndKubectlWait: kstatus sees a new config as InProgress before the
// controller looked at it and Current once Ready; `kubectl wait` returns.
func TestConfigKstatusAndKubectlWait(t *testing.T) {
	s := startSim(t, false, testWorld)
	ns := newNamespace(t)
	startManager(t, ns)
	if err := k8s.Create(testCtx, credentials(ns, "kstatus-credentials", tenantAPIKey, tenantSecretKey)); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(ns, "kstatus", s.url)
	if err := k8s.Create(testCtx, cfg); err != nil {
		t.Fatal(err)
	}
	// The object as the API server returned it from the create: nothing has reconciled it.
	if cfg.Status.ObservedGeneration != -1 {
		t.Fatalf("a new config has observedGeneration %d, want -1", cfg.Status.ObservedGeneration)
	}
	assertKstatus(t, cfg, status.InProgressStatus)

	out, err := kubectl(t, "wait", "--for=condition=Ready", "--timeout=30s", "-n", ns, "osc/kstatus")
	if err != nil {
		t.Fatalf("kubectl wait: %v\n%s", err, out)
	}
	got := waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionTrue, osseav1.ReasonConnected)
	assertKstatus(t, got, status.CurrentStatus)

	out, err = kubectl(t, "get", "-n", ns, "osc")
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, out)
	}
	for _, col := range []string{"ZONE", "OMA VM", "READY", "STATUS", cloudsim.DefaultOMAVMName, "True"} {
		if !strings.Contains(out, col) {
			t.Errorf("kubectl get osc does not show %q:\n%s", col, out)
		}
	}
}

// TestConfigDeletionWaitsForVolumes: while a MigrationVolume references the config, the
// config and its Secret carry the in-use finalizer and deletion waits, saying why.
func TestConfigDeletionWaitsForVolumes(t *testing.T) {
	s := startSim(t, false, testWorld)
	ns := newNamespace(t)
	startManager(t, ns)
	secret := credentials(ns, "inuse-credentials", tenantAPIKey, tenantSecretKey)
	if err := k8s.Create(testCtx, secret); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(ns, "inuse", s.url)
	if err := k8s.Create(testCtx, cfg); err != nil {
		t.Fatal(err)
	}
	waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionTrue, osseav1.ReasonConnected)
	if hasFinalizer(t, cfg) || hasFinalizer(t, secret) {
		t.Fatal("an unused config or its Secret carries the in-use finalizer")
	}

	vol := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "disk0"},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: cfg.Name},
			JobID:          "job-1", VMName: "web 01", DiskName: "disk0", SizeGiB: 1,
		},
	}
	if err := k8s.Create(testCtx, vol); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() string {
		if !hasFinalizer(t, cfg) || !hasFinalizer(t, secret) {
			return "in-use finalizers not yet on the config and its Secret"
		}
		return ""
	})

	if err := k8s.Delete(testCtx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(testCtx, secret); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() string {
		got := &osseav1.OsseaConfig{}
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(cfg), got); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionReconciling)
		if c == nil || c.Reason != osseav1.ReasonDeletionBlocked || !strings.Contains(c.Message, "1 MigrationVolume") || !strings.Contains(c.Message, "disk0") {
			return fmt.Sprintf("no DeletionBlocked condition naming the volume: %+v", got.Status.Conditions)
		}
		if !hasEvent(t, ns, "inuse", osseav1.ReasonDeletionBlocked) {
			return "no DeletionBlocked event"
		}
		return ""
	})
	// The Secret survives its deletion while the volume needs it for cleanup.
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); err != nil {
		t.Fatalf("the in-use Secret is gone: %v", err)
	}

	if err := k8s.Delete(testCtx, vol); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() string {
		for _, o := range []client.Object{&osseav1.OsseaConfig{}, &corev1.Secret{}} {
			key := client.ObjectKeyFromObject(cfg)
			if _, ok := o.(*corev1.Secret); ok {
				key = client.ObjectKeyFromObject(secret)
			}
			if err := k8s.Get(testCtx, key, o); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("%T %s still exists (%v)", o, key.Name, err)
			}
		}
		return ""
	})
}

// TestConfigInUseReleasedWhenVolumesGo: the finalizers come off again when the last
// volume goes while the config stays.
func TestConfigInUseReleasedWhenVolumesGo(t *testing.T) {
	s := startSim(t, false, testWorld)
	ns := newNamespace(t)
	startManager(t, ns)
	secret := credentials(ns, "release-credentials", tenantAPIKey, tenantSecretKey)
	if err := k8s.Create(testCtx, secret); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(ns, "release", s.url)
	if err := k8s.Create(testCtx, cfg); err != nil {
		t.Fatal(err)
	}
	vol := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "disk0"},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: cfg.Name},
			JobID:          "job-1", VMName: "web 01", DiskName: "disk0", SizeGiB: 1,
		},
	}
	if err := k8s.Create(testCtx, vol); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() string {
		if !hasFinalizer(t, cfg) || !hasFinalizer(t, secret) {
			return "in-use finalizers not yet set"
		}
		return ""
	})
	if err := k8s.Delete(testCtx, vol); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() string {
		if hasFinalizer(t, cfg) || hasFinalizer(t, secret) {
			return "in-use finalizers still set after the last volume went"
		}
		return ""
	})
}

func assertConnectedStatus(t *testing.T, cfg *osseav1.OsseaConfig) {
	t.Helper()
	st := cfg.Status
	if st.ZoneID != cloudsim.DefaultZoneID || st.CloudStackVersion == "" || st.OMAVirtualMachineName == "" ||
		st.OMAVirtualMachineState == "" || st.DiskOfferingID != cloudsim.DefaultDiskOfferingID || st.LastValidated == nil {
		t.Errorf("incomplete status after a passed connection test: %+v", st)
	}
	if st.Capacity == nil || st.Capacity.MaxDataVolumes < 1 {
		t.Errorf("no capacity in status: %+v", st.Capacity)
	}
	if meta.FindStatusCondition(st.Conditions, osseav1.ConditionStalled) != nil ||
		meta.FindStatusCondition(st.Conditions, osseav1.ConditionReconciling) != nil {
		t.Errorf("Stalled or Reconciling left on a Ready config: %+v", st.Conditions)
	}
}

func assertKstatus(t *testing.T, obj client.Object, want status.Status) {
	t.Helper()
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: raw}
	u.SetGroupVersionKind(osseav1.GroupVersion.WithKind("OsseaConfig"))
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != want {
		t.Errorf("kstatus = %s (%s), want %s", res.Status, res.Message, want)
	}
}

func hasFinalizer(t *testing.T, obj client.Object) bool {
	t.Helper()
	fresh := obj.DeepCopyObject().(client.Object)
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(obj), fresh); err != nil {
		return false
	}
	return controllerutil.ContainsFinalizer(fresh, osseav1.InUseFinalizer)
}

func hasEvent(t *testing.T, ns, name, reason string) bool {
	t.Helper()
	var evs eventsv1.EventList
	if err := k8s.List(testCtx, &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			return true
		}
	}
	return false
}

func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(env.BinaryDir, "kubectl")
	ctx, cancel := context.WithTimeout(testCtx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// closedPortURL returns a URL on a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	s := startSim(t, false, nil)
	url := s.url
	s.srv.Close()
	return url
}
