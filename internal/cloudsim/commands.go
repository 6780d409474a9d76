package cloudsim

// command is one API command. Async commands start a job in run and make their
// change in complete, when the job finishes.
type command struct {
	name string
	// class is the Java command class, which CloudStack reports as a job's "cmd".
	class    string
	run      func(c *call) (any, *apiError)
	complete func(s *Simulator, j *Job) (any, *apiError)
}

// commands is filled in init: its entries refer to functions that read it
// (rendering a job needs its class), which a variable initializer may not.
var commands map[string]*command

func init() {
	const user = "org.apache.cloudstack.api.command.user."
	list := []*command{
		{name: "listCapabilities", class: user + "config.ListCapabilitiesCmd", run: listCapabilities},
		{name: "listZones", class: user + "zone.ListZonesCmd", run: listZones},
		{name: "listDiskOfferings", class: user + "offering.ListDiskOfferingsCmd", run: listDiskOfferings},
		{name: "listVirtualMachines", class: user + "vm.ListVMsCmd", run: listVirtualMachines},
		{name: "startVirtualMachine", class: user + "vm.StartVMCmd", run: startVirtualMachine, complete: completeStartVirtualMachine},
		{name: "stopVirtualMachine", class: user + "vm.StopVMCmd", run: stopVirtualMachine, complete: completeStopVirtualMachine},
		{name: "listVolumes", class: user + "volume.ListVolumesCmd", run: listVolumes},
		{name: "createVolume", class: user + "volume.CreateVolumeCmd", run: createVolume, complete: completeCreateVolume},
		{name: "attachVolume", class: user + "volume.AttachVolumeCmd", run: attachVolume, complete: completeAttachVolume},
		{name: "detachVolume", class: user + "volume.DetachVolumeCmd", run: detachVolume, complete: completeDetachVolume},
		{name: "deleteVolume", class: user + "volume.DeleteVolumeCmd", run: deleteVolume},
		{name: "createTags", class: user + "tag.CreateTagsCmd", run: createTags, complete: completeCreateTags},
		{name: "deleteTags", class: user + "tag.DeleteTagsCmd", run: deleteTags, complete: completeDeleteTags},
		{name: "listTags", class: user + "tag.ListTagsCmd", run: listTags},
		{name: "queryAsyncJobResult", class: user + "job.QueryAsyncJobResultCmd", run: queryAsyncJobResult},
		{name: "listAsyncJobs", class: user + "job.ListAsyncJobsCmd", run: listAsyncJobs},
	}
	commands = make(map[string]*command, len(list))
	for _, c := range list {
		commands[c.name] = c
	}
}
