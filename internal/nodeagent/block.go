package nodeagent

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// reconcileBlock publishes a volume in Block mode: its disk is found and its size checked,
// and nothing else is done to it. No finalizer: nothing on the node depends on the disk
// staying, so the manager may detach it whenever the object goes.
func (r *Reconciler) reconcileBlock(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	dev, waiting, res, err := r.lookForDevice(s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if dev == nil {
		if !attachConfirmed(mv) {
			// Nothing to claim in Block mode while the attach runs: the status is left
			// alone (Attached tells of the attach), and the disk's link wakes us.
			return ctrl.Result{}, nil
		}
		return res, r.setStatus(ctx, s, waiting)
	}
	if d := decideSize(dev, mv.Spec.SizeGiB); d.step == stepRefuse {
		return r.refuse(ctx, s, dev, d)
	}
	published := blockPublishedBefore(s.prev, mv, dev)
	err = r.setStatus(ctx, s, &report{
		status: metav1.ConditionTrue, reason: osseav1.ReasonPublished,
		message:    fmt.Sprintf("%s (%s, %d bytes) is attached and verified; it is not formatted or mounted (mode Block)", dev.Link, dev.Path, dev.Size),
		devicePath: strp(dev.Link), mountPath: strp(""), filesystemType: strp(""),
	})
	if err == nil && !published {
		s.log.Info("Published block device", "device", dev.Path, "link", dev.Link)
		r.event(s, osseav1.ReasonPublished, "Publish", "Published %s (%s)", dev.Link, dev.Path)
	}
	return ctrl.Result{RequeueAfter: r.ResyncInterval}, err
}
