// Package controllers holds the manager's reconcilers: OsseaConfig (the connection test)
// and MigrationVolume (create, attach, detach, delete).
package controllers

// The manager reads and updates both kinds and their status, and holds finalizers on them.
// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=osseaconfigs;migrationvolumes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=osseaconfigs/status;migrationvolumes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=osseaconfigs/finalizers;migrationvolumes/finalizers,verbs=update
// +kubebuilder:rbac:groups=core;events.k8s.io,resources=events,verbs=create;patch
