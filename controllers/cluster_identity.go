package controllers

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// EnsureClusterIdentity returns this cluster's identity, kept in the ConfigMap
// osseav1.ClusterIdentityConfigMap of the manager's namespace, creating it the first time.
// Every replica and every restart reads the same one; it is never changed, since volumes
// already tagged with it would become another cluster's. c must read the API server, not a
// cache that has not started.
func EnsureClusterIdentity(ctx context.Context, c client.Client, namespace string) (string, error) {
	key := client.ObjectKey{Namespace: namespace, Name: osseav1.ClusterIdentityConfigMap}
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, key, cm)
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: osseav1.ClusterIdentityConfigMap,
				Labels: map[string]string{"app.kubernetes.io/name": "ossea-operator"}},
			Data: map[string]string{osseav1.ClusterIdentityKey: uuid.NewString()},
		}
		err = c.Create(ctx, cm)
		if apierrors.IsAlreadyExists(err) { // another replica was first
			err = c.Get(ctx, key, cm)
		}
	}
	if err != nil {
		return "", fmt.Errorf("reading or creating the cluster identity ConfigMap %s: %w", key, err)
	}
	id := cm.Data[osseav1.ClusterIdentityKey]
	if id == "" {
		return "", fmt.Errorf("the cluster identity ConfigMap %s has no %q: put back the value it had (the tag %s on the volumes this cluster made)",
			key, osseav1.ClusterIdentityKey, TagCluster)
	}
	return id, nil
}
