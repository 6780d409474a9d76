package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
	"github.com/migratekit/ossea-operator/internal/ownership"
	"github.com/migratekit/ossea-operator/test/world"
)

// lowerBound is control-plane's apply to all Attached with the manager replaced by the
// least work that any operator keeping the design's rules must do for a volume: one write
// that holds the object and records the create intent before the create; the create; the
// tag; the attach once the tag job has succeeded; one status write that says Attached. No
// lookup, no send guard, no event, no other status write, no queue: each object is taken
// up the moment the informer sees it, and each job is polled once its latency has passed.
// What it measures is what this machine allows, not the operator: the time the real
// manager takes above it is the manager's own. The manager makes the configs Ready and is
// then stopped; nothing is deleted afterwards (the world goes with the scratch directory).
func lowerBound(ctx context.Context, o options) (*report, error) {
	o = defaults(o, 100, 64)
	rep := newReport("lower-bound", o, nil)
	e, err := setup(ctx, o, world.SimOptions{VMs: o.vms, MaxDataVolumes: o.perVM, JobLatency: o.jobLatency, Seed: 1}, false)
	if err != nil {
		return rep, err
	}
	defer e.close()
	e.mgr.Stop()
	e.mgr = nil // waitFor must not take its stop for a failure

	op, err := startLeastOperator(ctx, e)
	if err != nil {
		return rep, err
	}
	if _, err := e.applyUntilAttached(ctx, rep, ", the least operator in place of the manager"); err != nil {
		return rep, fmt.Errorf("%w (the least operator's first error: %v)", err, op.firstError())
	}
	return rep, nil
}

// leastOperator is lowerBound's stand-in for the manager.
type leastOperator struct {
	c       client.Client
	clouds  map[string]cloudstack.Cloud // by config name
	configs map[string]*osseav1.OsseaConfig
	latency time.Duration

	mu    sync.Mutex
	taken map[string]bool
	err   error
}

func startLeastOperator(ctx context.Context, e *env) (*leastOperator, error) {
	op := &leastOperator{c: e.c, clouds: map[string]cloudstack.Cloud{}, configs: map[string]*osseav1.OsseaConfig{},
		latency: e.o.jobLatency, taken: map[string]bool{}}
	factory := cloudstack.NewFactory(cloudstack.WithRateLimit(e.o.qps, max(e.o.burst, int(e.o.qps))))
	var configs osseav1.OsseaConfigList
	if err := e.c.List(ctx, &configs, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	for i := range configs.Items {
		cfg := &configs.Items[i]
		secret := &corev1.Secret{}
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: cfg.Spec.CredentialsSecretRef.Name}, secret); err != nil {
			return nil, err
		}
		cloud, err := factory.For(cfg, secret)
		if err != nil {
			return nil, err
		}
		op.clouds[cfg.Name], op.configs[cfg.Name] = cloud, cfg
	}
	informers, err := cache.New(e.rest, cache.Options{Scheme: e.c.Scheme(), DefaultNamespaces: map[string]cache.Config{namespace: {}}})
	if err != nil {
		return nil, err
	}
	inf, err := informers.GetInformer(ctx, &osseav1.MigrationVolume{})
	if err != nil {
		return nil, err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if mv, ok := obj.(*osseav1.MigrationVolume); ok && op.take(mv) {
			mv = mv.DeepCopy() // the informer's copy is shared
			go func() { op.fail(op.attach(ctx, mv)) }()
		}
	}}); err != nil {
		return nil, err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the least operator's informer did not sync")
	}
	return op, nil
}

func (op *leastOperator) take(mv *osseav1.MigrationVolume) bool {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.taken[string(mv.UID)] {
		return false
	}
	op.taken[string(mv.UID)] = true
	return true
}

func (op *leastOperator) fail(err error) {
	if err == nil {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.err == nil {
		op.err = err
	}
}

func (op *leastOperator) firstError() error {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.err
}

// attach takes one volume from its object to Attached.
func (op *leastOperator) attach(ctx context.Context, mv *osseav1.MigrationVolume) error {
	cfg, cloud := op.configs[mv.Spec.OsseaConfigRef.Name], op.clouds[mv.Spec.OsseaConfigRef.Name]
	hold := ownership.Metadata{Finalizer: osseav1.VolumeFinalizer, Hold: true,
		Annotations: map[string]string{osseav1.CreateIntentAnnotation: time.Now().UTC().Format(time.RFC3339Nano)}}
	if err := ownership.ApplyMetadata(ctx, op.c, mv, hold, "lower-bound"); err != nil {
		return err
	}
	volumeID, _, err := cloud.CreateVolume(ctx, cloudstack.CreateVolumeRequest{
		Name: "mig_lower-bound_" + mv.Name + "_" + string(mv.UID)[:8], ZoneID: cfg.Status.ZoneID,
		DiskOfferingID: cfg.Status.DiskOfferingID, SizeGiB: int64(mv.Spec.SizeGiB),
	})
	if err != nil {
		return err
	}
	tagJob, err := cloud.CreateTags(ctx, volumeID, map[string]string{osseav1.ReservedTagPrefix + "uid": string(mv.UID)})
	if err != nil {
		return err
	}
	if err := op.await(ctx, cloud, tagJob); err != nil {
		return fmt.Errorf("tagging %s: %w", volumeID, err)
	}
	attachJob, err := cloud.AttachVolume(ctx, volumeID, cfg.Spec.OMAVirtualMachineID)
	if err != nil {
		return err
	}
	if err := op.await(ctx, cloud, attachJob); err != nil {
		return fmt.Errorf("attaching %s: %w", volumeID, err)
	}
	status := osseav1.MigrationVolumeStatus{VolumeID: volumeID, Conditions: []metav1.Condition{{
		Type: osseav1.ConditionAttached, Status: metav1.ConditionTrue, Reason: osseav1.ReasonAttached,
		Message: "attached", LastTransitionTime: metav1.Now(), ObservedGeneration: mv.Generation,
	}}}
	return ownership.ApplyStatus(ctx, op.c, mv, status, "lower-bound")
}

// await polls a job once its latency has passed, then every 20 ms until it ends.
func (op *leastOperator) await(ctx context.Context, cloud cloudstack.Cloud, jobID string) error {
	wait := op.latency
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		res, err := cloud.PollJob(ctx, jobID)
		if err != nil {
			return err
		}
		if res.Status != cloudstack.JobPending {
			return res.Err
		}
		wait = 20 * time.Millisecond
	}
}
