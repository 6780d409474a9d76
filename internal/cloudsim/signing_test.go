package cloudsim

import (
	"net/http"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

const authBody = `{"uuidList":[],"errorcode":401,"errortext":"unable to verify user credentials and/or request signature"}`

func TestJavaURLEncode(t *testing.T) {
	for in, want := range map[string]string{
		"abcXYZ019":  "abcXYZ019",
		".-*_":       ".-*_",
		"a b":        "a%20b",
		"~":          "%7E", // Go's QueryEscape leaves it: the source of the mismatch
		"+/=&?":      "%2B%2F%3D%26%3F",
		"ü":          "%C3%BC",
		"2025-01-01": "2025-01-01",
	} {
		if got := javaURLEncode(in); got != want {
			t.Errorf("javaURLEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

// Both transports the client uses verify: GET for lists, POST for changes.
func TestSignatureGETAndPOSTVerify(t *testing.T) {
	e := newEnv(t, Options{})
	zones, err := e.cs.Zone.ListZones(e.cs.Zone.NewListZonesParams()) // GET
	if err != nil || zones.Count != 1 || zones.Zones[0].Name != DefaultZoneName {
		t.Fatalf("listZones = %+v, %v", zones, err)
	}
	p := e.cs.Volume.NewCreateVolumeParams() // POST
	p.SetZoneid(DefaultZoneID)
	p.SetDiskofferingid(DefaultDiskOfferingID)
	p.SetSize(1)
	if _, err := e.cs.Volume.CreateVolume(p); err != nil {
		t.Fatalf("createVolume over POST: %v", err)
	}
}

func TestSignatureWrongSecret(t *testing.T) {
	e := newEnv(t, Options{})
	bad := cloudstack.NewClient(e.api, DefaultAPIKey, "not-the-secret", false)
	_, err := bad.Zone.ListZones(bad.Zone.NewListZonesParams())
	wantErr(t, err, apiErr(401, 0, authFailedText))

	r := e.rawSigned(http.MethodGet, signedValues(values("command", "listZones"), DefaultAPIKey, "wrong", time.Now().Add(time.Minute)))
	if r.status != 401 || r.body != `{"listzonesresponse":`+authBody+`}` || r.contentType != contentTypeJSON {
		t.Fatalf("got %d %q %q", r.status, r.contentType, r.body)
	}
}

func TestSignatureUnknownAPIKey(t *testing.T) {
	e := newEnv(t, Options{})
	other := cloudstack.NewClient(e.api, "nobody", DefaultSecretKey, false)
	_, err := other.Zone.ListZones(other.Zone.NewListZonesParams())
	wantErr(t, err, apiErr(401, 0, authFailedText))
}

func TestSignatureExpired(t *testing.T) {
	e := newEnv(t, Options{})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := e.rawSigned(method, signedValues(values("command", "listZones"), DefaultAPIKey, DefaultSecretKey, time.Now().Add(-time.Second)))
		if r.status != 401 || r.body != `{"listzonesresponse":`+authBody+`}` {
			t.Fatalf("%s expired: got %d %s", method, r.status, r.body)
		}
	}
	// Version 3 without "expires" at all is refused too.
	p := signedValues(values("command", "listZones"), DefaultAPIKey, DefaultSecretKey, time.Now().Add(time.Minute))
	p.Del("expires")
	if r := e.rawSigned(http.MethodGet, p); r.status != 401 {
		t.Fatalf("missing expires: got %d %s", r.status, r.body)
	}
	// The real client's requests expire 15 minutes after sending: a server clock
	// 20 minutes ahead sees them as expired.
	late := newEnv(t, Options{Clock: func() time.Time { return time.Now().Add(20 * time.Minute) }})
	_, err := late.cs.Zone.ListZones(late.cs.Zone.NewListZonesParams())
	wantErr(t, err, apiErr(401, 0, authFailedText))
}

// Go's client leaves "~" as is, Java's encoder writes %7E: the HMACs differ.
func TestSignatureTildeFails(t *testing.T) {
	e := newEnv(t, Options{})
	p := e.cs.Volume.NewCreateVolumeParams() // POST
	p.SetName("disk~1")
	p.SetZoneid(DefaultZoneID)
	p.SetDiskofferingid(DefaultDiskOfferingID)
	p.SetSize(1)
	_, err := e.cs.Volume.CreateVolume(p)
	wantErr(t, err, apiErr(401, 0, authFailedText))

	l := e.cs.Volume.NewListVolumesParams() // GET
	l.SetName("disk~1")
	_, err = e.cs.Volume.ListVolumes(l)
	wantErr(t, err, apiErr(401, 0, authFailedText))
	if n := len(e.sim.Snapshot().Volumes); n != 1 { // the ROOT volume only
		t.Fatalf("a rejected createVolume made a volume: %d volumes", n)
	}
}

// Spaces are sent as %20 and "*" unescaped by the client, as Java expects.
func TestSignatureSpacesAndStarSucceed(t *testing.T) {
	e := newEnv(t, Options{})
	const name = "mig disk *one* (VM 1)"
	v := e.createVolume(name, 1) // POST
	l := e.cs.Volume.NewListVolumesParams()
	l.SetName(name) // GET
	got, err := e.cs.Volume.ListVolumes(l)
	if err != nil || got.Count != 1 || got.Volumes[0].Id != v.Id || got.Volumes[0].Name != name {
		t.Fatalf("listVolumes name=%q: %+v, %v", name, got, err)
	}
}

func TestUnknownCommand(t *testing.T) {
	e := newEnv(t, Options{})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := e.raw(method, values("command", "frobnicateVolume"))
		if r.status != 401 || r.body != `{"errorresponse":`+authBody+`}` || r.contentType != contentTypeJSON {
			t.Fatalf("%s: got %d %q %s", method, r.status, r.contentType, r.body)
		}
	}
	// Command names are case-sensitive in CloudStack.
	if r := e.raw(http.MethodGet, values("command", "listvolumes")); r.status != 401 {
		t.Fatalf("listvolumes: got %d %s", r.status, r.body)
	}
}
