// Package nodeagent is the node agent's reconciler. It runs on each OMA node and takes a
// MigrationVolume from "attached to this VM" to "mounted at <mount root>/<jobID>/<diskName>"
// (Filesystem mode) or "device verified and published" (Block mode), and back again on
// deletion.
//
// The agent never formats a device that holds anything: only a device with no filesystem
// and no partition table, of exactly the volume's size, found under the by-id name that
// CloudStack's serial gives it, is formatted, and only when the volume's formatPolicy is
// IfBlank. It owns the Mounted condition and the status fields mountPath, filesystemType,
// nodeName and devicePath, the finalizer ossea.migratekit.io/mount and its claim, the label
// ossea.migratekit.io/node; everything else on the object belongs to the manager.
//
// Files, one job each:
//   - reconciler.go: the controller, the reconcile entry point and its scope
//   - filesystem.go, block.go, release.go: the three things a reconcile can do; they
//     gather facts through the host and act on the decisions
//   - decide.go: every decision, as pure functions of the object and the facts
//   - host.go: the host interface (all the agent does to the node) and linuxHost, the
//     real one, whose parts live in the next four files
//   - device.go: finding the disk by serial and describing the block device
//   - format.go: detecting what a device holds, and mkfs
//   - formatmark.go: the marks that tell an interrupted format of the agent's own
//   - mount.go: the mount table, mount and unmount
//   - paths.go: the confined mount path and its directories
//   - status.go: reasons, and status writes that never clobber the manager's
//   - watcher.go: fsnotify on the by-id directory, and the startup scan
//   - identity.go: which VM this agent serves
package nodeagent
