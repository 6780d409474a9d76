package ownership

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// A cached copy older than the writer's own last write of the object, or of an object that
// write deleted, is not acted on: it would write again what that write stored. Anything
// else is.
func TestLastWriteBehind(t *testing.T) {
	const uid, other = types.UID("8d3c1f0e-uid"), types.UID("5a7b2e9c-uid")
	for _, c := range []struct {
		name     string
		cached   string
		cachedOf types.UID
		last     LastWrite
		want     bool
	}{
		{"the cache has the write", "1200", uid, LastWrite{UID: uid, ResourceVersion: "1200"}, false},
		{"the cache has a later change", "1201", uid, LastWrite{UID: uid, ResourceVersion: "1200"}, false},
		{"the cache has not caught up", "1199", uid, LastWrite{UID: uid, ResourceVersion: "1200"}, true},
		{"fewer digits is older", "999", uid, LastWrite{UID: uid, ResourceVersion: "1000"}, true},
		{"more digits is newer", "10000", uid, LastWrite{UID: uid, ResourceVersion: "9999"}, false},
		{"same length, compared as numbers", "1190", uid, LastWrite{UID: uid, ResourceVersion: "1200"}, true},
		{"the write let the object go, answered at the version before", "1200", uid, LastWrite{UID: uid, ResourceVersion: "1200", Gone: true}, true},
		{"another object of that name since", "1100", other, LastWrite{UID: uid, ResourceVersion: "1200"}, false},
		{"another object of that name since the one deleted", "1300", other, LastWrite{UID: uid, ResourceVersion: "1200", Gone: true}, false},
		{"no resourceVersion cached", "", uid, LastWrite{UID: uid, ResourceVersion: "1200"}, false},
		{"not a number: act as without the check", "abc", uid, LastWrite{UID: uid, ResourceVersion: "1200"}, false},
		{"leading zero: not a resourceVersion", "0999", uid, LastWrite{UID: uid, ResourceVersion: "1000"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.last.Behind(c.cachedOf, c.cached); got != c.want {
				t.Fatalf("%+v.Behind(%s, %q) = %t; want %t", c.last, c.cachedOf, c.cached, got, c.want)
			}
		})
	}
}

// What a write's answer records, and that Behind and Forget use it.
func TestLastWritesRecord(t *testing.T) {
	const uid = types.UID("8d3c1f0e-uid")
	deleting := metav1.NewTime(time.Unix(1_700_000_000, 0))
	mv := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "v", UID: uid, ResourceVersion: "1200", DeletionTimestamp: &deleting}}
	key := types.NamespacedName{Namespace: "ns", Name: "v"}
	var w LastWrites
	for _, c := range []struct {
		name       string
		finalizers []string
		gone       bool
	}{
		{"deleting, a finalizer left", []string{osseav1.VolumeFinalizer}, false},
		{"deleting, no finalizer left: gone", nil, true},
	} {
		mv.Finalizers = c.finalizers
		w.Wrote(mv)
		got, _ := w.Last(key)
		if want := (LastWrite{UID: uid, ResourceVersion: "1200", Gone: c.gone}); got != want {
			t.Errorf("%s: Wrote recorded %+v; want %+v", c.name, got, want)
		}
	}
	stale := mv.DeepCopy()
	stale.ResourceVersion = "1100"
	if !w.Behind(stale) {
		t.Error("a copy of the object the last write let go is not behind")
	}
	w.Forget(key)
	if _, ok := w.Last(key); ok || w.Behind(stale) {
		t.Error("a forgotten object is still remembered")
	}
}
