package cloudsim

import (
	"net/http"
	"testing"
)

func TestListVolumesByTag(t *testing.T) {
	e := newEnv(t, Options{})
	mine, other := e.createVolume("mine", 1), e.createVolume("other", 1)

	tp := e.async.Resourcetags.NewCreateTagsParams([]string{mine.Id}, "Volume", map[string]string{
		"ossea.migratekit.io/managed-by": "ossea-operator", "ossea.migratekit.io/uid": "1234-abcd",
	})
	if _, err := e.async.Resourcetags.CreateTags(tp); err != nil {
		t.Fatalf("createTags: %v", err)
	}
	tp = e.async.Resourcetags.NewCreateTagsParams([]string{other.Id}, "volume", map[string]string{"ossea.migratekit.io/uid": "other"})
	if _, err := e.async.Resourcetags.CreateTags(tp); err != nil {
		t.Fatalf("createTags (lower-case type): %v", err)
	}

	p := e.cs.Volume.NewListVolumesParams()
	p.SetTags(map[string]string{"ossea.migratekit.io/managed-by": "ossea-operator", "ossea.migratekit.io/uid": "1234-abcd"})
	l, err := e.cs.Volume.ListVolumes(p)
	if err != nil || l.Count != 1 || l.Volumes[0].Id != mine.Id {
		t.Fatalf("listVolumes by tags: %+v, %v", l, err)
	}
	if tags := l.Volumes[0].Tags; len(tags) != 2 || tags[0].Resourcetype != "Volume" || tags[0].Resourceid != mine.Id {
		t.Fatalf("volume tags = %+v", tags)
	}
	p.SetTags(map[string]string{"ossea.migratekit.io/uid": "nobody"})
	if l, err := e.cs.Volume.ListVolumes(p); err != nil || l.Count != 0 {
		t.Fatalf("listVolumes by unmatched tag: %+v, %v", l, err)
	}

	lt := e.cs.Resourcetags.NewListTagsParams()
	lt.SetResourceid(mine.Id)
	if tags, err := e.cs.Resourcetags.ListTags(lt); err != nil || tags.Count != 2 {
		t.Fatalf("listTags: %+v, %v", tags, err)
	}

	// A repeated key violates CloudStack's unique key and fails the whole job.
	tp = e.async.Resourcetags.NewCreateTagsParams([]string{mine.Id}, "Volume", map[string]string{"ossea.migratekit.io/uid": "again"})
	if _, err := e.async.Resourcetags.CreateTags(tp); err == nil {
		t.Fatal("duplicate tag key accepted")
	}

	dp := e.async.Resourcetags.NewDeleteTagsParams([]string{mine.Id}, "Volume")
	dp.SetTags(map[string]string{"OSSEA.migratekit.io/UID": "1234-ABCD"}) // compared ignoring case
	if _, err := e.async.Resourcetags.DeleteTags(dp); err != nil {
		t.Fatalf("deleteTags: %v", err)
	}
	if got := e.volume(mine.Id).Tags; len(got) != 1 || got[0].Key != "ossea.migratekit.io/managed-by" {
		t.Fatalf("after deleteTags: %+v", got)
	}
	_, err = e.async.Resourcetags.DeleteTags(dp)
	wantErr(t, err, jobErr(431, "Unable to find tags by parameters specified"))
}

func TestCreateTagsErrors(t *testing.T) {
	e := newEnv(t, Options{})
	v := e.createVolume("v", 1)
	_, err := e.async.Resourcetags.CreateTags(e.async.Resourcetags.NewCreateTagsParams([]string{v.Id}, "Snapshotz", map[string]string{"k": "v"}))
	wantErr(t, err, apiErr(431, 4350, "Invalid resource type Snapshotz"))
	const gone = "0badc0de-0000-4000-8000-000000000000"
	_, err = e.async.Resourcetags.CreateTags(e.async.Resourcetags.NewCreateTagsParams([]string{gone}, "Volume", map[string]string{"k": "v"}))
	wantErr(t, err, jobErr(431, "Unable to find resource by uuid "+gone+" and type Volume"))
	r := e.raw(http.MethodPost, values("command", "createTags", "resourceids", v.Id, "resourcetype", "Volume"))
	if r.status != 431 || inner(t, r.body, "createtagsresponse")["errortext"] != "Unable to execute API command createtags due to missing parameter tags" {
		t.Fatalf("createTags without tags: %d %s", r.status, r.body)
	}
}
