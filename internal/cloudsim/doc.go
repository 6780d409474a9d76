// Package cloudsim is a CloudStack API simulator faithful to the behaviour
// written down in the project's reference (shared/reference/cloudstack-api.md):
// the same signed requests (signature version 3, GET and POST, values encoded the
// Java way so a "~" fails as on a real server), the same JSON envelopes, HTTP
// statuses and error texts, async jobs that change state only when they
// complete, CloudStack's volume rules, and seeded fault injection. Tests, the
// demo and benchmarks drive it with the real cloudstack-go client.
//
// # Endpoints
//
//	/client/api                 the CloudStack API (GET query or POST form)
//	GET  /admin/state           volumes, jobs, VMs, per-command call counters and times
//	GET  /admin/faults          the fault configuration
//	PUT  /admin/faults          replace it, e.g. {"errorRate":0.2,"extraLatency":"100ms","commands":["attachVolume"]}
//	POST /admin/reset-counters  zero the counters
//	PUT  /admin/virtualmachines/{id}/state   {"state":"Stopped"}
//
// Commands: listCapabilities, listZones, listDiskOfferings, listVirtualMachines,
// listVolumes, createVolume, attachVolume, detachVolume, deleteVolume,
// createTags, deleteTags, listTags, queryAsyncJobResult, listAsyncJobs. Any
// other command is answered 401 under the key "errorresponse", as CloudStack
// answers a command it does not know. Answers are always JSON: the simulator
// does not speak CloudStack's XML (response=xml or no response parameter).
//
// # The default world
//
// Without a world file the simulator serves DefaultWorld:
//
//	account        admin (root admin, domain ROOT, no volume limit)
//	               apiKey    DefaultAPIKey    = "cloudsim-api-key"
//	               secretKey DefaultSecretKey = "cloudsim-secret-key"
//	zone           DefaultZoneID = "0a7c5b1e-3d2f-4c8b-9e6a-000000000001", DefaultZoneName = "sim-zone-1", Advanced
//	disk offering  DefaultDiskOfferingID = "5f3d9a2c-8b1e-4f6d-a7c4-000000000001", "Custom", custom size (1..1024 GB)
//	VM             DefaultOMAVMID = "9c1e4b7d-2a6f-4d3c-8e5b-000000000001", "oma", Running, KVM,
//	               6 data volumes at most, an 8 GB ROOT volume, no local block
//
// testdata/world.yaml is a documented world file with every field.
//
// # Volumes and jobs
//
// createVolume allocates the volume at once (listed as Allocated, as
// CloudStack's create phase does) and its job only reports it. attachVolume and
// detachVolume validate and act when their job completes, after JobLatency (+
// seeded jitter); the first attach makes a volume Ready. Device ids are the
// lowest free from 1, skipping 3, up to the VM's MaxDataVolumes + 1. Every VM
// has a ROOT volume at device 0, owned by the VM's account, which counts
// against the account's volume limit as in CloudStack.
//
// # The local hypervisor
//
// For a VM with a local block, a completed attach backs the volume with the
// sparse file <backingDir>/<volumeID>.img (made once, kept across detaches), a
// loop device on it and the link <byIdDir>/virtio-<serial> (serial: the volume
// UUID without dashes, first 20 characters). Detach removes link and device,
// deleteVolume removes the file, Close removes every device the process made.
// This needs root and losetup.
package cloudsim
