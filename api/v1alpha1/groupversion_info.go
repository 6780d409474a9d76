// Package v1alpha1 contains the API types of the ossea.migratekit.io group: OsseaConfig, one
// CloudStack (OSSEA) endpoint and the VM of the migration appliance (OMA), and
// MigrationVolume, one disk of one migration job.
//
// +kubebuilder:object:generate=true
// +groupName=ossea.migratekit.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "ossea.migratekit.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group version to a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
