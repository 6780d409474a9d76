package cloudstack

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"
)

// listPageSize is CloudStack's default page size; paging through it keeps large accounts
// correct without relying on the server's default.
const (
	listPageSize = 500
	listMaxPages = 100
)

// adapter implements Cloud over cloudstack-go for one OsseaConfig.
type adapter struct {
	apiURL    string
	apiKey    string
	secretKey string
	verifyTLS bool
	rt        http.RoundTripper
	red       *redactor
	// omaVMID is "this VM" when an "attached" error has to be told apart.
	omaVMID               string
	defaultMaxDataVolumes int
	jobs                  *jobTargets
	// volumes, names and book batch the reads of this client's account (see batcher and
	// jobBook).
	volumes *batcher[Volume]
	names   *batcher[[]Volume]
	book    *jobBook
}

// newReaders wires a set of batched lookups to the adapter's own calls.
func (a *adapter) newReaders() *readers {
	var reserve func(context.Context) (context.Context, error)
	var busy func() bool
	if t, ok := a.rt.(*transport); ok {
		reserve = t.reserve
		busy = func() bool { return t.limiter.busy(busyGather) }
	}
	a.book = newJobBook()
	a.book.list = &batcher[jobReply]{call: a.listJobs, single: a.queryJobAlone, reserve: reserve, busy: busy}
	return &readers{
		volumes: &batcher[Volume]{call: a.getVolumes, single: a.getVolume, reserve: reserve, busy: busy},
		names:   &batcher[[]Volume]{call: a.findByNames, single: a.findByName, reserve: reserve, busy: busy},
		jobs:    a.book,
	}
}

var _ Cloud = (*adapter)(nil)

// client returns a cloudstack-go client whose requests carry ctx. cloudstack-go takes no
// context, so one cheap client per call is the only way to make cancellation, deadlines
// and the caller's logger reach the transport.
func (a *adapter) client(ctx context.Context) *csgo.CloudStackClient {
	hc := &http.Client{Transport: boundTransport{ctx: ctx, next: a.rt}}
	return csgo.NewClient(a.apiURL, a.apiKey, a.secretKey, a.verifyTLS, csgo.WithHTTPClient(hc))
}

// fail is the boundary every cloudstack-go error crosses: classified, redacted, wrapped
// with what was being done.
func (a *adapter) fail(err error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), classify(err, a.red))
}

func required(what, value string) error {
	if strings.TrimSpace(value) == "" {
		return newError(ErrInvalidParameter, "%s is empty", what)
	}
	return nil
}

func (a *adapter) CreateVolume(ctx context.Context, req CreateVolumeRequest) (string, string, error) {
	for _, f := range [][2]string{{"volume name", req.Name}, {"zone id", req.ZoneID}, {"disk offering id", req.DiskOfferingID}} {
		if err := required(f[0], f[1]); err != nil {
			return "", "", fmt.Errorf("creating volume %q: %w", req.Name, err)
		}
	}
	if req.SizeGiB < 0 {
		return "", "", fmt.Errorf("creating volume %q: %w", req.Name, newError(ErrInvalidParameter, "size %d GiB is negative", req.SizeGiB))
	}
	cs := a.client(ctx)
	p := cs.Volume.NewCreateVolumeParams()
	p.SetName(req.Name)
	p.SetZoneid(req.ZoneID)
	p.SetDiskofferingid(req.DiskOfferingID)
	if req.SizeGiB > 0 {
		p.SetSize(req.SizeGiB)
	}
	r, err := cs.Volume.CreateVolume(p)
	if err != nil {
		return "", "", a.fail(err, "creating volume %q", req.Name)
	}
	if r.JobID == "" {
		return r.Id, "", fmt.Errorf("creating volume %q: %w", req.Name, newError(ErrTransient, "CloudStack returned no job id"))
	}
	a.book.began(r.JobID)
	a.book.watch(r.JobID)
	return r.Id, r.JobID, nil
}

func (a *adapter) AttachVolume(ctx context.Context, volumeID, vmID string) (string, error) {
	if err := firstErr(required("volume id", volumeID), required("VM id", vmID)); err != nil {
		return "", fmt.Errorf("attaching volume %s to VM %s: %w", volumeID, vmID, err)
	}
	cs := a.client(ctx)
	r, err := cs.Volume.AttachVolume(cs.Volume.NewAttachVolumeParams(volumeID, vmID))
	if err != nil {
		e := a.refineAttached(ctx, classify(err, a.red), volumeID, vmID)
		return "", fmt.Errorf("attaching volume %s to VM %s: %w", volumeID, vmID, e)
	}
	a.jobs.remember(r.JobID, jobTarget{volumeID: volumeID, vmID: vmID})
	a.book.began(r.JobID)
	return r.JobID, nil
}

func (a *adapter) AttachVolumeAt(ctx context.Context, volumeID, vmID string, deviceID int64) (string, error) {
	if err := firstErr(required("volume id", volumeID), required("VM id", vmID)); err != nil {
		return "", fmt.Errorf("attaching volume %s to VM %s: %w", volumeID, vmID, err)
	}
	cs := a.client(ctx)
	p := cs.Volume.NewAttachVolumeParams(volumeID, vmID)
	p.SetDeviceid(deviceID)
	r, err := cs.Volume.AttachVolume(p)
	if err != nil {
		e := a.refineAttached(ctx, classify(err, a.red), volumeID, vmID)
		return "", fmt.Errorf("attaching volume %s to VM %s at device %d: %w", volumeID, vmID, deviceID, e)
	}
	a.jobs.remember(r.JobID, jobTarget{volumeID: volumeID, vmID: vmID})
	a.book.began(r.JobID)
	return r.JobID, nil
}

func (a *adapter) GetVirtualMachine(ctx context.Context, vmID string) (*VirtualMachine, error) {
	vm, err := a.readVM(a.client(ctx), vmID)
	if err != nil {
		return nil, err
	}
	return &vm, nil
}

func (a *adapter) DetachVolume(ctx context.Context, volumeID string) (string, error) {
	if err := required("volume id", volumeID); err != nil {
		return "", fmt.Errorf("detaching volume: %w", err)
	}
	cs := a.client(ctx)
	p := cs.Volume.NewDetachVolumeParams()
	p.SetId(volumeID)
	r, err := cs.Volume.DetachVolume(p)
	if err != nil {
		return "", a.fail(err, "detaching volume %s", volumeID)
	}
	a.book.began(r.JobID)
	return r.JobID, nil
}

func (a *adapter) CreateTags(ctx context.Context, volumeID string, tags map[string]string) (string, error) {
	if err := required("volume id", volumeID); err != nil {
		return "", fmt.Errorf("tagging volume: %w", err)
	}
	if len(tags) == 0 {
		return "", fmt.Errorf("tagging volume %s: %w", volumeID, newError(ErrInvalidParameter, "no tags given"))
	}
	cs := a.client(ctx)
	r, err := cs.Resourcetags.CreateTags(cs.Resourcetags.NewCreateTagsParams([]string{volumeID}, "Volume", tags))
	if err != nil {
		return "", a.fail(err, "tagging volume %s", volumeID)
	}
	a.book.began(r.JobID)
	return r.JobID, nil
}

func (a *adapter) DeleteTags(ctx context.Context, volumeID string, tags map[string]string) (string, error) {
	if err := required("volume id", volumeID); err != nil {
		return "", fmt.Errorf("removing tags: %w", err)
	}
	if len(tags) == 0 {
		return "", fmt.Errorf("removing tags from volume %s: %w", volumeID,
			newError(ErrInvalidParameter, "no tags given (CloudStack would remove every tag)"))
	}
	cs := a.client(ctx)
	p := cs.Resourcetags.NewDeleteTagsParams([]string{volumeID}, "Volume")
	p.SetTags(tags)
	r, err := cs.Resourcetags.DeleteTags(p)
	if err != nil {
		return "", a.fail(err, "removing tags from volume %s", volumeID)
	}
	a.book.began(r.JobID)
	return r.JobID, nil
}

func (a *adapter) DeleteVolume(ctx context.Context, volumeID string) error {
	if err := required("volume id", volumeID); err != nil {
		return fmt.Errorf("deleting volume: %w", err)
	}
	cs := a.client(ctx)
	r, err := cs.Volume.DeleteVolume(cs.Volume.NewDeleteVolumeParams(volumeID))
	if err != nil {
		e := a.refineAttached(ctx, classify(err, a.red), volumeID, a.omaVMID)
		return fmt.Errorf("deleting volume %s: %w", volumeID, e)
	}
	if !r.Success {
		return fmt.Errorf("deleting volume %s: %w", volumeID,
			&Error{Text: a.red.String("CloudStack did not report success: " + r.Displaytext)})
	}
	return nil
}

// GetVolume reads one volume. Reads of the same client are batched (see batcher): many
// volumes waiting on their jobs are read with one listVolumes.
func (a *adapter) GetVolume(ctx context.Context, volumeID string) (*Volume, error) {
	if err := required("volume id", volumeID); err != nil {
		// An empty id would list every volume of the account.
		return nil, fmt.Errorf("reading volume: %w", err)
	}
	v, found, err := a.volumes.get(ctx, strings.ToLower(volumeID))
	if err != nil {
		return nil, fmt.Errorf("reading volume %s: %w", volumeID, err)
	}
	if !found {
		return nil, fmt.Errorf("reading volume %s: %w", volumeID, newError(ErrNotFound, "volume %s not found", volumeID))
	}
	return &v, nil
}

// getVolumes is one listVolumes for up to maxBatch ids, by lower-case id.
func (a *adapter) getVolumes(ctx context.Context, ids []string) (map[string]Volume, error) {
	vols, err := a.listVolumes(ctx, VolumeQuery{}, func(p *csgo.ListVolumesParams) {
		if len(ids) == 1 {
			p.SetId(ids[0])
		} else {
			p.SetIds(ids)
		}
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]Volume, len(vols))
	for _, v := range vols {
		out[strings.ToLower(v.ID)] = v
	}
	return out, nil
}

func (a *adapter) getVolume(ctx context.Context, id string) (Volume, bool, error) {
	found, err := a.getVolumes(ctx, []string{id})
	v, ok := found[id]
	return v, ok, err
}

func (a *adapter) FindVolumes(ctx context.Context, q VolumeQuery) ([]Volume, error) {
	return a.listVolumes(ctx, q, nil)
}

// FindVolumesNamed is batched with the other name lookups of the client (see batcher).
func (a *adapter) FindVolumesNamed(ctx context.Context, name string) ([]Volume, error) {
	if err := required("volume name", name); err != nil {
		return nil, fmt.Errorf("looking for volumes by name: %w", err)
	}
	vols, _, err := a.names.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("looking for volumes named %q: %w", name, err)
	}
	return vols, nil
}

// findByNames looks up several names with one listing: CloudStack filters on a single name
// only, but its keyword matches a substring, and the names the operator gives its volumes
// share a prefix.
func (a *adapter) findByNames(ctx context.Context, names []string) (map[string][]Volume, error) {
	var vols []Volume
	var err error
	if len(names) == 1 {
		vols, err = a.listVolumes(ctx, VolumeQuery{Name: names[0]}, nil)
	} else {
		prefix := commonPrefix(names)
		vols, err = a.listVolumes(ctx, VolumeQuery{}, func(p *csgo.ListVolumesParams) {
			if prefix != "" {
				p.SetKeyword(prefix)
			}
		})
	}
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := map[string][]Volume{}
	for _, v := range vols {
		if want[v.Name] {
			out[v.Name] = append(out[v.Name], v)
		}
	}
	return out, nil
}

func (a *adapter) findByName(ctx context.Context, name string) ([]Volume, bool, error) {
	vols, err := a.listVolumes(ctx, VolumeQuery{Name: name}, nil)
	return vols, len(vols) > 0, err
}

func commonPrefix(names []string) string {
	p := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

// listVolumes pages through listVolumes with the query's filters, plus whatever extra sets,
// and keeps what matches the query on the client side too.
func (a *adapter) listVolumes(ctx context.Context, q VolumeQuery, extra func(*csgo.ListVolumesParams)) ([]Volume, error) {
	cs := a.client(ctx)
	var out []Volume
	seen := 0
	for page := 1; page <= listMaxPages; page++ {
		p := cs.Volume.NewListVolumesParams()
		if q.Name != "" {
			p.SetName(q.Name)
		}
		if len(q.Tags) > 0 {
			p.SetTags(q.Tags)
		}
		if q.ZoneID != "" {
			p.SetZoneid(q.ZoneID)
		}
		if q.VirtualMachineID != "" {
			p.SetVirtualmachineid(q.VirtualMachineID)
		}
		if q.Type != "" {
			p.SetType(q.Type)
		}
		if extra != nil {
			extra(p)
		}
		p.SetPage(page)
		p.SetPagesize(listPageSize)
		r, err := cs.Volume.ListVolumes(p)
		if err != nil {
			return nil, a.fail(err, "listing volumes")
		}
		for _, v := range r.Volumes {
			vol := volumeFrom(v)
			if q.matches(&vol) {
				out = append(out, vol)
			}
		}
		seen += len(r.Volumes)
		if len(r.Volumes) < listPageSize || seen >= r.Count {
			break
		}
	}
	return out, nil
}

func (a *adapter) CountDataVolumes(ctx context.Context, vmID string) (int, error) {
	if err := required("VM id", vmID); err != nil {
		return 0, fmt.Errorf("counting data volumes: %w", err)
	}
	vols, err := a.FindVolumes(ctx, VolumeQuery{VirtualMachineID: vmID, Type: VolumeTypeDataDisk})
	if err != nil {
		return 0, fmt.Errorf("counting data volumes of VM %s: %w", vmID, err)
	}
	return len(vols), nil
}

// refineAttached tells "attached to this VM" from "attached elsewhere" by re-reading the
// volume, because CloudStack says only "Please specify a volume that is not attached to
// any VM." for both. When the volume cannot be read the broader class stays.
func (a *adapter) refineAttached(ctx context.Context, e *Error, volumeID, vmID string) *Error {
	if e.Class != ErrVolumeAttached || volumeID == "" || vmID == "" {
		return e
	}
	v, err := a.GetVolume(ctx, volumeID)
	if err != nil || !v.Attached() {
		return e
	}
	refined := *e
	if strings.EqualFold(v.VirtualMachineID, vmID) {
		refined.Class = ErrAlreadyAttached
	} else {
		refined.Class = ErrAttachedElsewhere
		refined.Text = fmt.Sprintf("%s (it is attached to VM %s)", e.Text, v.VirtualMachineID)
	}
	return &refined
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
