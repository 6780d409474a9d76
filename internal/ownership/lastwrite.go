package ownership

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// LastWrites remembers, per object, what this process's own last write of it left. A
// reconcile queued while that write was made runs right after it, on a cached copy from
// before it: acting on that copy would do, and write, the same again. Both writers of a
// MigrationVolume skip such copies; the watch of their own write brings the object back.
type LastWrites struct {
	m sync.Map // types.NamespacedName -> LastWrite
}

// LastWrite is what one write left: the object's uid, its resourceVersion as the API
// server answered, and whether the write let the object go (it removed the last finalizer
// of an object being deleted: the API server then answers with the object as last stored,
// at that older version).
type LastWrite struct {
	UID             types.UID
	ResourceVersion string
	Gone            bool
}

// Wrote records obj, as the API server answered a write of this process, as its last write.
func (w *LastWrites) Wrote(obj client.Object) {
	if obj.GetResourceVersion() == "" {
		return
	}
	w.m.Store(client.ObjectKeyFromObject(obj), LastWrite{UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		Gone: obj.GetDeletionTimestamp() != nil && len(obj.GetFinalizers()) == 0})
}

// Last returns what the last write of the object left, if this process remembers one.
func (w *LastWrites) Last(key types.NamespacedName) (LastWrite, bool) {
	v, ok := w.m.Load(key)
	if !ok {
		return LastWrite{}, false
	}
	return v.(LastWrite), true
}

// Forget drops what is remembered of the object: it is gone.
func (w *LastWrites) Forget(key types.NamespacedName) { w.m.Delete(key) }

// Behind reports whether the cached copy is older than this process's last write of the
// object, or is of an object that write let go.
func (w *LastWrites) Behind(cached client.Object) bool {
	last, ok := w.Last(client.ObjectKeyFromObject(cached))
	return ok && last.Behind(cached.GetUID(), cached.GetResourceVersion())
}

// Behind reports whether a cached copy (its uid and resourceVersion) is older than the
// object as this write left it, or is of the object this write let go. Resource versions
// compare as numbers (comparing them is part of the API since Kubernetes 1.35, KEP-5504;
// older API servers on etcd give the same numbers); one that is not such a number counts
// as not older, so the caller acts as it would without the check. A copy of another object
// of the same name is never behind.
func (l LastWrite) Behind(uid types.UID, resourceVersion string) bool {
	if uid != l.UID {
		return false
	}
	if l.Gone {
		return true
	}
	c, err := resourceversion.CompareResourceVersion(resourceVersion, l.ResourceVersion)
	return err == nil && c < 0
}
