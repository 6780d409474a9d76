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
	if kinds["Secret"] != 1 || kinds["OsseaConfig"] != 1 || kinds["MigrationVolume"] < 2 || kinds["MigrationJob"] != 1 {
		t.Errorf("samples hold %v; want a Secret, an OsseaConfig, a few MigrationVolumes and a MigrationJob", kinds)
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
