package controllers

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Sharding: managers started with --watch-filter=<value> each reconcile only the objects
// labelled ossea.migratekit.io/watch-filter=<value>.

// mustCacheOptions is CacheOptions for a test, which fails on an error.
func mustCacheOptions(t *testing.T, namespace, watchFilter string) cache.Options {
	t.Helper()
	o, err := CacheOptions(namespace, watchFilter)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The cache options of each flag combination: the filter restricts exactly the three kinds
// the manager reconciles (Secrets stay unfiltered), the namespace stays the default of all
// of them, and a value that cannot name a Lease is refused.
func TestCacheOptionsWatchFilter(t *testing.T) {
	for _, tc := range []struct {
		name, namespace, filter string
		wantSelector            string // "" = no ByObject at all
		wantLease               string
		wantErr                 string
	}{
		{name: "all objects", wantLease: "ossea-operator.migratekit.io"},
		{name: "namespace only", namespace: "ossea-migration", wantLease: "ossea-operator.migratekit.io"},
		{name: "shard", filter: "a", wantSelector: osseav1.WatchFilterLabel + "=a", wantLease: "ossea-operator.migratekit.io-a"},
		{name: "shard in a namespace", namespace: "ossea-migration", filter: "east-1", wantSelector: osseav1.WatchFilterLabel + "=east-1", wantLease: "ossea-operator.migratekit.io-east-1"},
		{name: "upper case", filter: "East", wantErr: `watch filter "East"`},
		{name: "underscore", filter: "a_b", wantErr: `watch filter "a_b"`},
		{name: "too long", filter: strings.Repeat("a", 64), wantErr: "must be no more than 63"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := CacheOptions(tc.namespace, tc.filter)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.DefaultTransform == nil {
				t.Error("managedFields are no longer stripped")
			}
			if o.DefaultLabelSelector != nil {
				t.Errorf("DefaultLabelSelector %v: it would filter Secrets too", o.DefaultLabelSelector)
			}
			if _, ok := o.DefaultNamespaces[tc.namespace]; (tc.namespace != "") != ok || len(o.DefaultNamespaces) > 1 {
				t.Errorf("DefaultNamespaces %v, want only %q", o.DefaultNamespaces, tc.namespace)
			}
			if got := LeaderElectionID(tc.filter); got != tc.wantLease {
				t.Errorf("LeaderElectionID(%q) = %q, want %q", tc.filter, got, tc.wantLease)
			}
			if tc.wantSelector == "" {
				if len(o.ByObject) != 0 {
					t.Errorf("ByObject %v without a filter", o.ByObject)
				}
				return
			}
			kinds := map[string]bool{}
			for obj, by := range o.ByObject {
				kind := fmt.Sprintf("%T", obj)
				kinds[kind] = true
				if by.Label == nil || by.Label.String() != tc.wantSelector {
					t.Errorf("%s: selector %v, want %s", kind, by.Label, tc.wantSelector)
					continue
				}
				if by.Namespaces != nil {
					t.Errorf("%s: Namespaces %v, want the default's", kind, by.Namespaces)
				}
				if by.Label.Matches(labels.Set{osseav1.WatchFilterLabel: tc.filter + "x"}) || by.Label.Matches(labels.Set{}) {
					t.Errorf("%s: the selector takes another shard's or an unlabelled object", kind)
				}
			}
			for _, want := range []string{"*v1alpha1.OsseaConfig", "*v1alpha1.MigrationJob", "*v1alpha1.MigrationVolume"} {
				if !kinds[want] {
					t.Errorf("%s is not filtered (filtered: %v)", want, kinds)
				}
			}
			if len(kinds) != 3 {
				t.Errorf("filtered kinds %v, want exactly the three the manager reconciles", kinds)
			}
		})
	}
}
