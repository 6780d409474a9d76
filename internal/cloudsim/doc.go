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
//	PUT  /admin/virtualmachines/{id}/state   {"state":"Stopped"}: any state, no rules
//	POST /admin/virtualmachines/{id}/start   start at once by startVirtualMachine's rules
//	POST /admin/virtualmachines/{id}/stop    stop at once by stopVirtualMachine's rules
//
// start and stop answer 204, 409 {"error": CloudStack's text} when the VM's state
// refuses, 404 for an unknown VM.
//
// Commands: listCapabilities, listZones, listDiskOfferings, listVirtualMachines,
// startVirtualMachine, stopVirtualMachine, listVolumes, createVolume,
// attachVolume, detachVolume, deleteVolume, createTags, deleteTags, listTags,
// queryAsyncJobResult, listAsyncJobs. Any other command is answered 401 under
// the key "errorresponse", as CloudStack answers a command it does not know.
// Answers are always JSON: the simulator does not speak CloudStack's XML
// (response=xml or no response parameter).
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
// lowest free from 1, skipping 3, up to the VM's MaxDataVolumes + 1; an explicit
// deviceid must be free and in 0..MaxDataVolumes + 1 but not 3, else the job fails
// with 530 ("deviceId should be 0,1,2,4-<max>", "deviceId <n> is used by vm <id>",
// the id being the VM's place in the world file, from 1). Every VM starts with a
// ROOT volume at device 0 (its template's placeholder), owned by the VM's
// account, which counts against the account's volume limit as in CloudStack; it is
// made once, so a restart does not bring back a placeholder that was replaced.
// Attach rules run in the order of the reference's Hand-off table (the VM's state
// and zone, then the volume's); CloudStack 4.20's source checks the volume first,
// which differs only for a call that breaks a rule of each.
//
// # Target VMs and root disks
//
// A target VM is a VM without a local block, usually Stopped, with its own
// hypervisor (world field hypervisor, default KVM, listed by listVirtualMachines).
// attachVolume with deviceid=0 makes a volume the VM's ROOT disk; detachVolume of
// a ROOT volume makes it a DATADISK again, which can then be deleted or attached
// anywhere. Both fail the job with 431, in this order, unless the hypervisor is
// XenServer, VMware, KVM or Simulator ("Root volume detach is not supported for
// hypervisor type <type>") and the VM is Stopped ("Root volume detach can happen
// only when vm is in states: Stopped or Destroyed", though only Stopped passes);
// a root attach also needs
// device 0 free ("Vm already has root volume attached to it") and is not counted
// against the data-disk limit. Any detach fails for a VM that is not Running,
// Stopped or Destroyed ("Please specify a VM that is either running or
// stopped."). Tags work on ROOT volumes as on any volume.
//
// startVirtualMachine and stopVirtualMachine are async: they return a jobid, the
// state changes when the job completes, and the job's result is the VM. As in
// CloudStack, starting a Running VM fails the job with 431 ("The virtual machine
// <uuid> (<name>) is already running"), starting any other state but Stopped with
// 530 ("Cannot start VM[User|<instance>] in <state> state"; CloudStack first waits
// out a transitional state), and stopping a Stopped, Destroyed, Expunging or
// Error VM succeeds without a change. Starting a VM without a volume at device 0
// fails the job with 530 "Unable to start VM <name>: it has no root volume": this
// is the simulator's own rule and text (uncertain: CloudStack has no dedicated
// check). Stopping a VM in a transitional state fails with 530 "We cannot stop
// VM[User|<instance>] when it is in state <state>", a simplification.
//
// # API throttling
//
// Options.Throttle (cloudsim --api-throttle-max, --api-throttle-interval) is
// CloudStack's api.throttling.* settings, off by default: past Max calls of an
// account in its window of Interval (fixed, opened by its first call), every call,
// list* and queryAsyncJobResult included, is refused before it runs with 429/9999
// "The given user has reached his/her account api limit, please retry after [<n>]
// ms.". Root admin accounts (admin: true, as the default world's) are never
// throttled, as in CloudStack. State.Throttled counts the refused calls by command;
// they are in State.Calls as well. See Throttle for the details.
//
// # The local hypervisor
//
// Only a VM with a local block (the OMA) has real disks; a target VM's
// attachments exist only in the simulator's state. For a VM with a local block, a
// completed attach backs the volume with the
// sparse file <backingDir>/<volumeID>.img (made once, kept across detaches), a
// loop device on it and the link <byIdDir>/virtio-<serial> (serial: the volume
// UUID without dashes, first 20 characters). Detach removes link and device,
// deleteVolume removes the file, Close removes every device the process made.
// This needs root and losetup.
package cloudsim
