package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/test/world"
)

// The schema is the first line of defence: jobID and diskName become path segments on the
// OMA, so the API server itself must refuse anything that could escape the mount root,
// and every refusal must name the field so a person can fix the manifest.

var k8sClient client.Client

func TestMain(m *testing.M) {
	world.MainWithAPIServer(m, world.Needs{}, func(env *testenv.Env) { k8sClient = env.Client })
}

const (
	validUUID = "8a3c3d0e-5b1f-4c5e-9a55-0a1e2b3c4d5e"
	otherUUID = "11111111-2222-4333-8444-555555555555"
)

func validVolume(name string) map[string]any {
	return map[string]any{
		"apiVersion": "ossea.migratekit.io/v1alpha1",
		"kind":       "MigrationVolume",
		"metadata":   map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{
			"osseaConfigRef": map[string]any{"name": "ossea"},
			"jobID":          "job-1",
			"vmName":         "Web Server (Prod) 01",
			"diskName":       "disk0",
			"sizeGiB":        int64(10),
		},
	}
}

func validConfig(name string) map[string]any {
	return map[string]any{
		"apiVersion": "ossea.migratekit.io/v1alpha1",
		"kind":       "OsseaConfig",
		"metadata":   map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{
			"apiURL":               "https://cloud.example.com/client/api",
			"credentialsSecretRef": map[string]any{"name": "ossea-credentials"},
			"zone":                 "zone1",
			"omaVirtualMachineID":  validUUID,
		},
	}
}

// edit returns a function that sets (or, with value nil, removes) one spec field.
func set(path string, value any) func(map[string]any) {
	return func(obj map[string]any) {
		fields := append([]string{"spec"}, strings.Split(path, ".")...)
		if value == nil {
			unstructured.RemoveNestedField(obj, fields...)
			return
		}
		if err := unstructured.SetNestedField(obj, value, fields...); err != nil {
			panic(err)
		}
	}
}

func TestSchemaRejectsInvalidObjects(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name string
		base func(string) map[string]any
		edit func(map[string]any)
		want []string // substrings of the API server's error: the field path, and why
	}{
		// Path segments: jobID.
		{"jobID parent escape", validVolume, set("jobID", "../x"), []string{"spec.jobID", "should match"}},
		{"jobID slash", validVolume, set("jobID", "a/b"), []string{"spec.jobID", "should match"}},
		{"jobID dot-dot", validVolume, set("jobID", ".."), []string{"spec.jobID", "should match"}},
		{"jobID dot", validVolume, set("jobID", "."), []string{"spec.jobID", "should match"}},
		{"jobID upper case", validVolume, set("jobID", "Job-1"), []string{"spec.jobID", "should match"}},
		{"jobID empty", validVolume, set("jobID", ""), []string{"spec.jobID", "at least 1 chars long"}},
		{"jobID overlong", validVolume, set("jobID", long(64)), []string{"spec.jobID", "may not be more than 63"}},
		{"jobID leading dash", validVolume, set("jobID", "-job"), []string{"spec.jobID", "should match"}},
		{"jobID missing", validVolume, set("jobID", nil), []string{"spec.jobID", "Required value"}},
		// Path segments: diskName.
		{"diskName parent escape", validVolume, set("diskName", "../x"), []string{"spec.diskName", "should match"}},
		{"diskName slash", validVolume, set("diskName", "a/b"), []string{"spec.diskName", "should match"}},
		{"diskName dot-dot", validVolume, set("diskName", ".."), []string{"spec.diskName", "should match"}},
		{"diskName upper case", validVolume, set("diskName", "Disk0"), []string{"spec.diskName", "should match"}},
		{"diskName empty", validVolume, set("diskName", ""), []string{"spec.diskName", "at least 1 chars long"}},
		{"diskName overlong", validVolume, set("diskName", long(64)), []string{"spec.diskName", "may not be more than 63"}},
		{"diskName with space", validVolume, set("diskName", "disk 0"), []string{"spec.diskName", "should match"}},
		// vmName: real VMware names pass, but bounded and free of control characters.
		{"vmName empty", validVolume, set("vmName", ""), []string{"spec.vmName", "at least 1 chars long"}},
		{"vmName overlong", validVolume, set("vmName", long(81)), []string{"spec.vmName", "may not be more than 80"}},
		{"vmName newline", validVolume, set("vmName", "web\n01"), []string{"spec.vmName", "should match"}},
		{"vmName tab", validVolume, set("vmName", "web\t01"), []string{"spec.vmName", "should match"}},
		{"vmName escape char", validVolume, set("vmName", "web\x1b[2J"), []string{"spec.vmName", "should match"}},
		// Size.
		{"sizeGiB zero", validVolume, set("sizeGiB", int64(0)), []string{"spec.sizeGiB", "greater than or equal to 1"}},
		{"sizeGiB negative", validVolume, set("sizeGiB", int64(-1)), []string{"spec.sizeGiB", "greater than or equal to 1"}},
		{"sizeGiB too large", validVolume, set("sizeGiB", int64(65537)), []string{"spec.sizeGiB", "less than or equal to 65536"}},
		{"sizeGiB missing", validVolume, set("sizeGiB", nil), []string{"spec.sizeGiB", "Required value"}},
		// References and ids.
		{"volume diskOfferingID not a UUID", validVolume, set("diskOfferingID", "large-disks"), []string{"spec.diskOfferingID", "should match"}},
		{"osseaConfigRef empty name", validVolume, set("osseaConfigRef.name", ""), []string{"spec.osseaConfigRef.name", "at least 1 chars long"}},
		{"osseaConfigRef missing", validVolume, set("osseaConfigRef", nil), []string{"spec.osseaConfigRef", "Required value"}},
		// Enums and cross-field rules.
		{"mode unknown", validVolume, set("mode", "Raw"), []string{"spec.mode", "Unsupported value", `"Filesystem"`, `"Block"`}},
		{"filesystem type unknown", validVolume, set("filesystem.type", "btrfs"), []string{"spec.filesystem.type", "Unsupported value", `"ext4"`, `"xfs"`}},
		{"formatPolicy unknown", validVolume, set("filesystem.formatPolicy", "Always"), []string{"spec.filesystem.formatPolicy", "Unsupported value", `"IfBlank"`}},
		{"deletionPolicy unknown", validVolume, set("deletionPolicy", "Orphan"), []string{"spec.deletionPolicy", "Unsupported value", `"Retain"`}},
		{"filesystem with Block mode", validVolume, func(o map[string]any) {
			set("mode", "Block")(o)
			set("filesystem.type", "ext4")(o)
		}, []string{"spec", "filesystem must not be set when mode is Block"}},
		// Tags.
		{"tag key reserved", validVolume, set("tags", map[string]any{"ossea.migratekit.io/uid": "x"}), []string{"spec.tags", "reserved for the operator"}},
		{"tag key overlong", validVolume, set("tags", map[string]any{long(129): "x"}), []string{"spec.tags", "keys must be 1 to 128 characters"}},
		{"tag value overlong", validVolume, set("tags", map[string]any{"wave": long(256)}), []string{"spec.tags", "values must be at most 255 characters"}},
		// OsseaConfig.
		{"apiURL ftp", validConfig, set("apiURL", "ftp://cloud.example.com/client/api"), []string{"spec.apiURL", "must be an http:// or https:// URL"}},
		{"apiURL without scheme", validConfig, set("apiURL", "cloud.example.com/client/api"), []string{"spec.apiURL", "must be an http:// or https:// URL"}},
		{"apiURL empty", validConfig, set("apiURL", ""), []string{"spec.apiURL", "at least 8 chars long"}},
		{"omaVirtualMachineID not a UUID", validConfig, set("omaVirtualMachineID", "vm-1"), []string{"spec.omaVirtualMachineID", "should match"}},
		{"omaVirtualMachineID missing", validConfig, set("omaVirtualMachineID", nil), []string{"spec.omaVirtualMachineID", "Required value"}},
		{"config diskOfferingID not a UUID", validConfig, set("diskOfferingID", "1234"), []string{"spec.diskOfferingID", "should match"}},
		{"zone empty", validConfig, set("zone", ""), []string{"spec.zone", "at least 1 chars long"}},
		{"credentialsSecretRef empty name", validConfig, set("credentialsSecretRef.name", ""), []string{"spec.credentialsSecretRef.name", "at least 1 chars long"}},
		{"maxDataVolumes zero", validConfig, set("maxDataVolumes", int64(0)), []string{"spec.maxDataVolumes", "greater than or equal to 1"}},
		{"orphanPolicy unknown", validConfig, set("orphanPolicy", "Sometimes"), []string{"spec.orphanPolicy", "Unsupported value"}},
		{"orphanGracePeriod negative", validConfig, set("orphanGracePeriod", "-1h"), []string{"spec.orphanGracePeriod", "must be a duration such as 24h"}},
		{"orphanGracePeriod in days", validConfig, set("orphanGracePeriod", "1d"), []string{"spec.orphanGracePeriod", "must be a duration such as 24h"}},
		{"orphanGracePeriod not a duration", validConfig, set("orphanGracePeriod", "a day"), []string{"spec.orphanGracePeriod", "must be a duration such as 24h"}},
		{"caBundle with insecureSkipTLSVerify", validConfig, func(o map[string]any) {
			set("caBundle", "-----BEGIN CERTIFICATE-----")(o)
			set("insecureSkipTLSVerify", true)(o)
		}, []string{"spec", "caBundle and insecureSkipTLSVerify are mutually exclusive"}},
	}

	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.base(fmt.Sprintf("invalid-%d", i))
			tc.edit(obj)
			err := k8sClient.Create(ctx, &unstructured.Unstructured{Object: obj})
			assertInvalid(t, err, tc.want)
		})
	}
	if len(cases) < 30 {
		t.Fatalf("only %d invalid objects in the table; the schema deserves at least 30", len(cases))
	}
}

func TestSchemaRejectsChangesToImmutableFields(t *testing.T) {
	cases := []struct {
		name    string
		base    func(string) map[string]any
		initial func(map[string]any)
		change  func(map[string]any)
		want    []string
	}{
		{"osseaConfigRef", validVolume, nil, set("osseaConfigRef.name", "other"), []string{"spec.osseaConfigRef", "osseaConfigRef is immutable"}},
		{"jobID", validVolume, nil, set("jobID", "job-2"), []string{"spec.jobID", "jobID is immutable"}},
		{"vmName", validVolume, nil, set("vmName", "Other VM"), []string{"spec.vmName", "vmName is immutable"}},
		{"diskName", validVolume, nil, set("diskName", "disk1"), []string{"spec.diskName", "diskName is immutable"}},
		{"sizeGiB", validVolume, nil, set("sizeGiB", int64(20)), []string{"spec.sizeGiB", "sizeGiB is immutable"}},
		{"mode", validVolume, nil, set("mode", "Block"), []string{"spec.mode", "mode is immutable"}},
		{"diskOfferingID changed", validVolume, set("diskOfferingID", validUUID), set("diskOfferingID", otherUUID), []string{"spec", "diskOfferingID is immutable"}},
		{"diskOfferingID added", validVolume, nil, set("diskOfferingID", otherUUID), []string{"spec", "diskOfferingID is immutable"}},
		{"omaVirtualMachineID", validConfig, nil, set("omaVirtualMachineID", otherUUID), []string{"spec.omaVirtualMachineID", "omaVirtualMachineID is immutable"}},
		{"handoff changed", validVolume, set("handoff", map[string]any{"virtualMachineID": validUUID}), set("handoff.asRoot", true), []string{"spec.handoff", "handoff is immutable once set"}},
		{"handoff removed", validVolume, set("handoff", map[string]any{"virtualMachineID": validUUID}), set("handoff", nil), []string{"spec.handoff", "handoff is immutable once set"}},
	}
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: tc.base(fmt.Sprintf("immutable-%d", i))}
			if tc.initial != nil {
				tc.initial(obj.Object)
			}
			if err := k8sClient.Create(ctx, obj); err != nil {
				t.Fatalf("creating the valid object: %v", err)
			}
			tc.change(obj.Object)
			assertInvalid(t, k8sClient.Update(ctx, obj), tc.want)
		})
	}
}

func TestSchemaAllowsMutableFieldsAndDefaults(t *testing.T) {
	ctx := context.Background()
	obj := &unstructured.Unstructured{Object: validVolume("mutable")}
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatalf("creating: %v", err)
	}
	// Defaults: kstatus and `kubectl wait` must see the object as not yet observed.
	for path, want := range map[string]any{
		"spec.mode":                 "Filesystem",
		"spec.deletionPolicy":       "Delete",
		"status.observedGeneration": int64(-1),
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(obj.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	set("deletionPolicy", "Retain")(obj.Object)
	set("tags", map[string]any{"wave": "2"})(obj.Object)
	set("filesystem.formatPolicy", "Never")(obj.Object)
	if err := k8sClient.Update(ctx, obj); err != nil {
		t.Fatalf("changing mutable fields was refused: %v", err)
	}
	fsType, _, _ := unstructured.NestedString(obj.Object, "spec", "filesystem", "type")
	if fsType != "ext4" {
		t.Errorf("spec.filesystem.type defaulted to %q, want ext4", fsType)
	}

	cfg := &unstructured.Unstructured{Object: validConfig("defaults")}
	// spec.domain was removed (the keys imply the account's domain, and no call takes it);
	// an old manifest that still sets it must apply, the field dropped.
	_ = unstructured.SetNestedField(cfg.Object, "/", "spec", "domain")
	if err := k8sClient.Create(ctx, cfg); err != nil {
		t.Fatalf("creating config: %v", err)
	}
	if d, found, _ := unstructured.NestedString(cfg.Object, "spec", "domain"); found {
		t.Errorf("spec.domain kept as %q; it is no longer part of the API and must be pruned", d)
	}
	if g, _, _ := unstructured.NestedInt64(cfg.Object, "status", "observedGeneration"); g != -1 {
		t.Errorf("config status.observedGeneration = %d, want -1", g)
	}
	for path, want := range map[string]any{"spec.orphanPolicy": "Report", "spec.orphanGracePeriod": "24h"} {
		if got, _, _ := unstructured.NestedFieldNoCopy(cfg.Object, strings.Split(path, ".")...); got != want {
			t.Errorf("config %s = %v, want %v", path, got, want)
		}
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "ossea_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName("samples")
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		for _, obj := range readObjects(t, f) {
			obj.SetNamespace("samples")
			if err := k8sClient.Create(ctx, obj); err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(f), obj.GetKind(), obj.GetName(), err)
			}
			kinds[obj.GetKind()]++
		}
	}
	if kinds["Secret"] != 1 || kinds["OsseaConfig"] != 2 || kinds["MigrationVolume"] < 2 || kinds["MigrationJob"] != 1 {
		t.Errorf("samples hold %v; want a Secret, two OsseaConfigs (a pool), a few MigrationVolumes and a MigrationJob", kinds)
	}
}

func assertInvalid(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the API server accepted the object; want a rejection mentioning %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %T: %v", err, err)
	}
	t.Logf("refused: %v", err) // with -v, the log shows every refusal as a person sees it
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// The node agent caches only the volumes attached to its own VM, through a field selector
// the API server evaluates; that needs the fields declared selectable.
func TestSelectableFields(t *testing.T) {
	ctx := context.Background()
	obj := &unstructured.Unstructured{Object: validVolume("selectable")}
	set("osseaConfigRef.name", "selectable-config")(obj.Object)
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	for selector, want := range map[string]int{
		"spec.osseaConfigRef.name=selectable-config":   1,
		"spec.osseaConfigRef.name=other":               0,
		"status.attachedVirtualMachineID=" + validUUID: 0,
	} {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("ossea.migratekit.io/v1alpha1")
		list.SetKind("MigrationVolumeList")
		sel, err := fields.ParseSelector(selector)
		if err != nil {
			t.Fatal(err)
		}
		if err := k8sClient.List(ctx, list, client.InNamespace("default"), client.MatchingFieldsSelector{Selector: sel}); err != nil {
			t.Fatalf("listing with %s: %v", selector, err)
		}
		if len(list.Items) != want {
			t.Errorf("%s selected %d volumes, want %d", selector, len(list.Items), want)
		}
	}
}

// MigrationJob. Its name is the jobID, and its disks' names become MigrationVolume diskNames:
// both are path segments on the OMA, refused at admission unless they are DNS labels.

func validJob(name string) map[string]any {
	return map[string]any{
		"apiVersion": "ossea.migratekit.io/v1alpha1",
		"kind":       "MigrationJob",
		"metadata":   map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{
			"vmName":    "Web Server (prod) 01",
			"placement": map[string]any{"osseaConfigSelector": map[string]any{"matchLabels": map[string]any{"pool": "prod"}}},
			"disks": []any{
				map[string]any{"name": "disk0", "sizeGiB": int64(40)},
				map[string]any{"name": "disk1", "capacityBytes": int64(42949673472), "mode": "Block"},
			},
		},
	}
}

// named sets the object's name.
func named(name string) func(map[string]any) {
	return func(obj map[string]any) {
		if err := unstructured.SetNestedField(obj, name, "metadata", "name"); err != nil {
			panic(err)
		}
	}
}

// setDisk sets (or, with value nil, removes) one field of spec.disks[i]; path is dotted.
func setDisk(i int, path string, value any) func(map[string]any) {
	return func(obj map[string]any) {
		disks, _, err := unstructured.NestedSlice(obj, "spec", "disks")
		if err != nil {
			panic(err)
		}
		d := disks[i].(map[string]any)
		fields := strings.Split(path, ".")
		if value == nil {
			unstructured.RemoveNestedField(d, fields...)
		} else if err := unstructured.SetNestedField(d, value, fields...); err != nil {
			panic(err)
		}
		set("disks", disks)(obj)
	}
}

// setSelectorExpr makes the job's selector one match expression.
func setSelectorExpr(expr map[string]any) func(map[string]any) {
	return set("placement.osseaConfigSelector", map[string]any{"matchExpressions": []any{expr}})
}

// nDisks makes n valid disks named disk0 ... disk<n-1>.
func nDisks(n int) []any {
	disks := make([]any, n)
	for i := range disks {
		disks[i] = map[string]any{"name": fmt.Sprintf("disk%d", i), "sizeGiB": int64(1)}
	}
	return disks
}

func TestSchemaRejectsInvalidJobs(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	both := func(o map[string]any) {
		set("placement.osseaConfigRef.name", "oma-a")(o)
	}
	cases := []struct {
		name string
		edit func(map[string]any)
		want []string // substrings of the API server's error: the field path, and why
	}{
		// The name is the jobID.
		{"name longer than 63", named(long(64)), []string{"metadata.name", "at most 63 characters"}},
		{"name with underscore and capitals", named("Job_1"), []string{"metadata.name"}},
		{"name with a dot", named("job.1"), []string{"metadata.name must be a lower-case DNS label"}},
		// vmName, as MigrationVolume's.
		{"vmName empty", set("vmName", ""), []string{"spec.vmName", "at least 1 chars long"}},
		{"vmName overlong", set("vmName", long(81)), []string{"spec.vmName", "may not be more than 80"}},
		{"vmName newline", set("vmName", "web\n01"), []string{"spec.vmName", "should match"}},
		{"vmName escape char", set("vmName", "web\x1b[2J"), []string{"spec.vmName", "should match"}},
		{"vmName missing", set("vmName", nil), []string{"spec.vmName", "Required value"}},
		// placement: exactly one of ref and selector.
		{"placement with ref and selector", both, []string{"spec.placement", "exactly one of osseaConfigRef and osseaConfigSelector"}},
		{"placement with neither", set("placement", map[string]any{}), []string{"spec.placement", "exactly one of osseaConfigRef and osseaConfigSelector"}},
		{"placement missing", set("placement", nil), []string{"spec.placement", "Required value"}},
		{"osseaConfigRef empty name", func(o map[string]any) {
			set("placement", map[string]any{"osseaConfigRef": map[string]any{"name": ""}})(o)
		}, []string{"spec.placement.osseaConfigRef.name", "at least 1 chars long"}},
		// The selector's operators (label key and value syntax is left to the controller: a
		// CEL check of every key and value costs more than the API server allows).
		{"selector operator unknown", setSelectorExpr(map[string]any{"key": "pool", "operator": "Equals", "values": []any{"prod"}}),
			[]string{"spec.placement.osseaConfigSelector.matchExpressions", "operator must be In, NotIn, Exists or DoesNotExist"}},
		{"selector In without values", setSelectorExpr(map[string]any{"key": "pool", "operator": "In"}),
			[]string{"spec.placement.osseaConfigSelector.matchExpressions", "values must be set for In and NotIn, and only for them"}},
		{"selector Exists with values", setSelectorExpr(map[string]any{"key": "pool", "operator": "Exists", "values": []any{"prod"}}),
			[]string{"spec.placement.osseaConfigSelector.matchExpressions", "values must be set for In and NotIn, and only for them"}},
		// disks: 1..64, names unique.
		{"disks empty", set("disks", []any{}), []string{"spec.disks", "at least 1 items"}},
		{"disks missing", set("disks", nil), []string{"spec.disks", "Required value"}},
		{"65 disks", set("disks", nDisks(65)), []string{"spec.disks", "must have at most 64 items"}},
		{"duplicate disk names", setDisk(1, "name", "disk0"), []string{"spec.disks[1]", "Duplicate value"}},
		// A disk's name, as MigrationVolume's diskName.
		{"disk name upper case", setDisk(0, "name", "Disk0"), []string{"spec.disks[0].name", "should match"}},
		{"disk name parent escape", setDisk(0, "name", "../x"), []string{"spec.disks[0].name", "should match"}},
		{"disk name with a dot", setDisk(0, "name", "disk.0"), []string{"spec.disks[0].name", "should match"}},
		{"disk name overlong", setDisk(0, "name", long(64)), []string{"spec.disks[0].name", "may not be more than 63"}},
		{"disk name missing", setDisk(0, "name", nil), []string{"spec.disks[0].name", "Required value"}},
		// A disk's size: exactly one of sizeGiB and capacityBytes, each in bounds.
		{"neither sizeGiB nor capacityBytes", setDisk(0, "sizeGiB", nil), []string{"spec.disks[0]", "exactly one of sizeGiB and capacityBytes"}},
		{"both sizeGiB and capacityBytes", setDisk(0, "capacityBytes", int64(1<<30)), []string{"spec.disks[0]", "exactly one of sizeGiB and capacityBytes"}},
		{"sizeGiB zero", setDisk(0, "sizeGiB", int64(0)), []string{"spec.disks[0].sizeGiB", "greater than or equal to 1"}},
		{"sizeGiB over the maximum", setDisk(0, "sizeGiB", int64(osseav1.MaxDiskSizeGiB+1)), []string{"spec.disks[0].sizeGiB", "less than or equal to 65536"}},
		{"capacityBytes zero", setDisk(1, "capacityBytes", int64(0)), []string{"spec.disks[1].capacityBytes", "greater than or equal to 1"}},
		{"capacityBytes negative", setDisk(1, "capacityBytes", int64(-1)), []string{"spec.disks[1].capacityBytes", "greater than or equal to 1"}},
		{"capacityBytes over the maximum", setDisk(1, "capacityBytes", osseav1.MaxDiskCapacityBytes+1), []string{"spec.disks[1].capacityBytes", "less than or equal to 70368744177664"}},
		// Mode, filesystem, disk offering.
		{"mode unknown", setDisk(0, "mode", "Raw"), []string{"spec.disks[0].mode", "Unsupported value", `"Filesystem"`, `"Block"`}},
		{"filesystem with Block mode", setDisk(1, "filesystem.type", "ext4"), []string{"spec.disks[1]", "filesystem must not be set when mode is Block"}},
		{"filesystem type unknown", setDisk(0, "filesystem.type", "btrfs"), []string{"spec.disks[0].filesystem.type", "Unsupported value", `"xfs"`}},
		{"formatPolicy unknown", setDisk(0, "filesystem.formatPolicy", "Always"), []string{"spec.disks[0].filesystem.formatPolicy", "Unsupported value", `"IfBlank"`}},
		{"diskOfferingID not a UUID", setDisk(0, "diskOfferingID", "large-disks"), []string{"spec.disks[0].diskOfferingID", "should match"}},
		// deletionPolicy.
		{"deletionPolicy unknown", set("deletionPolicy", "Orphan"), []string{"spec.deletionPolicy", "Unsupported value", `"Retain"`}},
		// cutover.
		{"cutover target not a UUID", set("cutover", map[string]any{"targetVirtualMachineID": "web-01"}), []string{"spec.cutover.targetVirtualMachineID", "should match"}},
		{"cutover without a target", set("cutover", map[string]any{"rootDisk": "disk0"}), []string{"spec.cutover.targetVirtualMachineID", "Required value"}},
		{"cutover rootDisk not a disk", set("cutover", map[string]any{"targetVirtualMachineID": validUUID, "rootDisk": "disk7"}), []string{"spec.cutover.rootDisk", "must name a disk of spec.disks"}},
		{"cutover rootDisk not a DNS label", set("cutover", map[string]any{"targetVirtualMachineID": validUUID, "rootDisk": "Disk_0"}), []string{"spec.cutover.rootDisk", "should match"}},
	}

	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := validJob(fmt.Sprintf("invalid-job-%d", i))
			tc.edit(obj)
			err := k8sClient.Create(ctx, &unstructured.Unstructured{Object: obj})
			assertInvalid(t, err, tc.want)
		})
	}
	if len(cases) < 18 {
		t.Fatalf("only %d invalid jobs in the table; the schema deserves at least 18", len(cases))
	}
}

func TestSchemaRejectsChangesToImmutableJobFields(t *testing.T) {
	cases := []struct {
		name   string
		change func(map[string]any)
		want   []string
	}{
		{"vmName", set("vmName", "Other VM"), []string{"spec.vmName", "vmName is immutable"}},
		{"placement selector labels", set("placement.osseaConfigSelector.matchLabels.pool", "test"), []string{"spec.placement", "placement is immutable"}},
		{"placement selector to ref", set("placement", map[string]any{"osseaConfigRef": map[string]any{"name": "oma-a"}}), []string{"spec.placement", "placement is immutable"}},
		{"disk size", setDisk(0, "sizeGiB", int64(41)), []string{"spec.disks", "disks is immutable"}},
		{"disk mode", setDisk(1, "mode", "Filesystem"), []string{"spec.disks", "disks is immutable"}},
		{"disk added", set("disks", append(validJob("x")["spec"].(map[string]any)["disks"].([]any), map[string]any{"name": "disk2", "sizeGiB": int64(1)})), []string{"spec.disks", "disks is immutable"}},
		{"disk removed", set("disks", validJob("x")["spec"].(map[string]any)["disks"].([]any)[:1]), []string{"spec.disks", "disks is immutable"}},
		{"disk renamed", setDisk(1, "name", "disk9"), []string{"spec.disks", "disks is immutable"}},
		{"diskOfferingID added", setDisk(0, "diskOfferingID", validUUID), []string{"spec.disks", "disks is immutable"}},
		{"cutover changed", set("cutover.targetVirtualMachineID", otherUUID), []string{"spec.cutover", "cutover is immutable once set"}},
		{"cutover removed", set("cutover", nil), []string{"spec.cutover", "cutover is immutable once set"}},
	}
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: validJob(fmt.Sprintf("immutable-job-%d", i))}
			set("cutover", map[string]any{"targetVirtualMachineID": validUUID, "rootDisk": "disk1"})(obj.Object)
			if err := k8sClient.Create(ctx, obj); err != nil {
				t.Fatalf("creating the valid job: %v", err)
			}
			tc.change(obj.Object)
			assertInvalid(t, k8sClient.Update(ctx, obj), tc.want)
		})
	}
}

// The placement is written once, before any volume exists, and the API server keeps it so:
// a manager that restarts mid-placement can never move a job it already placed.
func TestSchemaKeepsJobPlacement(t *testing.T) {
	ctx := context.Background()
	obj := &unstructured.Unstructured{Object: validJob("placed-once")}
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	placement := func(name, vm string) func(map[string]any) {
		return func(o map[string]any) {
			_ = unstructured.SetNestedField(o, map[string]any{"osseaConfigName": name, "omaVirtualMachineID": vm}, "status", "placement")
		}
	}
	placement("oma-a", validUUID)(obj.Object)
	_ = unstructured.SetNestedField(obj.Object, "0/2", "status", "disksReady")
	if err := k8sClient.Status().Update(ctx, obj); err != nil {
		t.Fatalf("writing the first placement was refused: %v", err)
	}
	for name, change := range map[string]func(map[string]any){
		"other config": placement("oma-b", validUUID),
		"other VM":     placement("oma-a", otherUUID),
		"removed":      func(o map[string]any) { unstructured.RemoveNestedField(o, "status", "placement") },
	} {
		t.Run(name, func(t *testing.T) {
			changed := obj.DeepCopy()
			change(changed.Object)
			assertInvalid(t, k8sClient.Status().Update(ctx, changed), []string{"status.placement", "status.placement never changes once written"})
		})
	}
	// What the controller may write is checked too.
	statusCases := []struct {
		name   string
		change func(map[string]any)
		want   []string
	}{
		{"placement without the VM id", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, map[string]any{"osseaConfigName": "oma-a"}, "status", "placement")
		}, []string{"status.placement.omaVirtualMachineID", "Required value"}},
		{"placement VM id not a UUID", placement("oma-a", "vm-1"), []string{"status.placement.omaVirtualMachineID", "should match"}},
		{"disksReady not n/m", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, "2-3", "status", "disksReady")
		}, []string{"status.disksReady", "should match"}},
		{"phase unknown", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, "Mounted", "status", "phase")
		}, []string{"status.phase", "Unsupported value", `"Provisioning"`}},
	}
	for i, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			fresh := &unstructured.Unstructured{Object: validJob(fmt.Sprintf("invalid-status-%d", i))}
			if err := k8sClient.Create(ctx, fresh); err != nil {
				t.Fatal(err)
			}
			tc.change(fresh.Object)
			assertInvalid(t, k8sClient.Status().Update(ctx, fresh), tc.want)
		})
	}
}

func TestSchemaJobDefaultsAndMutableFields(t *testing.T) {
	ctx := context.Background()
	obj := &unstructured.Unstructured{Object: validJob("defaults")}
	set("disks", []any{
		map[string]any{"name": "disk0", "sizeGiB": int64(40)},
		map[string]any{"name": "disk1", "capacityBytes": int64(42949673472), "mode": "Block"},
		map[string]any{"name": "disk2", "capacityBytes": osseav1.MaxDiskCapacityBytes, "filesystem": map[string]any{}},
		map[string]any{"name": "disk3", "sizeGiB": int64(osseav1.MaxDiskSizeGiB), "filesystem": map[string]any{"type": "xfs"}, "diskOfferingID": validUUID},
	})(obj.Object)
	named(strings.Repeat("j", 63))(obj.Object) // the longest jobID
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatalf("creating a valid job: %v", err)
	}
	disks, _, _ := unstructured.NestedSlice(obj.Object, "spec", "disks")
	field := func(i int, path string) any {
		v, _, _ := unstructured.NestedFieldNoCopy(disks[i].(map[string]any), strings.Split(path, ".")...)
		return v
	}
	for _, c := range []struct {
		what string
		got  any
		want any
	}{
		{"spec.deletionPolicy", obj.Object["spec"].(map[string]any)["deletionPolicy"], "Delete"},
		{"status.observedGeneration", obj.Object["status"].(map[string]any)["observedGeneration"], int64(-1)},
		{"disks[0].mode", field(0, "mode"), "Filesystem"},
		{"disks[0].filesystem", field(0, "filesystem"), nil}, // as MigrationVolume: absent means the defaults
		{"disks[1].mode", field(1, "mode"), "Block"},
		{"disks[2].filesystem.type", field(2, "filesystem.type"), "ext4"},
		{"disks[2].filesystem.formatPolicy", field(2, "filesystem.formatPolicy"), "IfBlank"},
		{"disks[3].filesystem.type", field(3, "filesystem.type"), "xfs"},
		{"disks[3].filesystem.formatPolicy", field(3, "filesystem.formatPolicy"), "IfBlank"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}

	// The typed client reads the same object, and the sizes come out in whole GiB.
	var job osseav1.MigrationJob
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), &job); err != nil {
		t.Fatal(err)
	}
	var sizes []int32
	for _, d := range job.Spec.Disks {
		sizes = append(sizes, d.VolumeSizeGiB())
	}
	if fmt.Sprint(sizes) != "[40 41 65536 65536]" {
		t.Errorf("volume sizes %v, want [40 41 65536 65536]", sizes)
	}

	// deletionPolicy may change (it is given to the disks when they are deleted); the disks
	// may be listed in another order, which is the same list map.
	set("deletionPolicy", "Retain")(obj.Object)
	set("disks", []any{disks[3], disks[2], disks[1], disks[0]})(obj.Object)
	if err := k8sClient.Update(ctx, obj); err != nil {
		t.Fatalf("changing deletionPolicy and the disks' order was refused: %v", err)
	}

	// A job placed by name.
	byRef := &unstructured.Unstructured{Object: validJob("by-ref")}
	set("placement", map[string]any{"osseaConfigRef": map[string]any{"name": "oma-a"}})(byRef.Object)
	if err := k8sClient.Create(ctx, byRef); err != nil {
		t.Fatalf("creating a job placed by osseaConfigRef: %v", err)
	}
	// 64 disks, the most a job may have.
	most := &unstructured.Unstructured{Object: validJob("sixty-four")}
	set("disks", nDisks(64))(most.Object)
	if err := k8sClient.Create(ctx, most); err != nil {
		t.Fatalf("creating a job of 64 disks: %v", err)
	}
}
