package cloudsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzAPIRequest feeds arbitrary queries and bodies to the parser and the
// dispatcher. With sign set the request is signed with the default key first,
// so the fuzzer reaches the commands, not only the 401. Whatever comes in, the
// answer must be CloudStack-shaped: one "<command>response" (or
// "errorresponse") key, JSON, and an error's errorcode equal to the status.
func FuzzAPIRequest(f *testing.F) {
	for _, seed := range []struct {
		post        bool
		query, body string
		sign        bool
	}{
		{false, "command=listZones", "", true},
		{false, "command=listCapabilities", "", true},
		{true, "command=createVolume&zoneid=" + DefaultZoneID + "&diskofferingid=" + DefaultDiskOfferingID + "&size=1&name=a%20b*", "", true},
		{true, "", "command=createVolume&zoneid=" + DefaultZoneID + "&diskofferingid=" + DefaultDiskOfferingID + "&size=-5", true},
		{true, "", "command=attachVolume&id=x&virtualmachineid=" + DefaultOMAVMID + "&deviceid=3", true},
		{true, "command=detachVolume&virtualmachineid=" + DefaultOMAVMID + "&deviceid=0", "", true},
		{true, "command=deleteVolume&id=" + stableUUID("rootvolume", DefaultOMAVMID), "", true},
		{false, "command=listVolumes&tags[0].key=a&tags[0].value=b&tags[99999999999].key=c&page=2&pagesize=1", "", true},
		{false, "command=listVolumes&pagesize=-1&page=99999999999999999999", "", true},
		{false, "command=listVolumes&ids=,,&listall=TRUE&type=root&keyword=%25", "", true},
		{true, "command=createTags&resourceids=a,b&resourcetype=Volume&tags[0].key=k", "", true},
		{true, "command=deleteTags&resourceids=&resourcetype=volume", "", true},
		{false, "command=queryAsyncJobResult&jobid=nope", "", true},
		{false, "command=listAsyncJobs&page=0", "", true},
		{false, "command=listVirtualMachines&state=running&zoneid=zz", "", true},
		{false, "command=nope&apiKey=x&signature=y", "", false},
		{false, "command=listZones&apiKey=" + DefaultAPIKey + "&signatureversion=3&expires=yesterday&signature=x", "", false},
		{true, "%zz", "a=%;b", false},
		{true, "command=createVolume", "command=listZones", true},
		{false, "command=listZones&APIKEY=a&apikey=b&Signature=c", "", true},
	} {
		f.Add(seed.post, seed.query, seed.body, seed.sign)
	}
	f.Fuzz(func(t *testing.T, post bool, query, body string, sign bool) {
		sim, err := New(Options{World: DefaultWorld(), Seed: 1, Logf: func(string, ...any) {}})
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		if sign {
			query, body = signFuzzInput(query, body, post)
		}
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		req := httptest.NewRequest(method, "/client/api", strings.NewReader(body))
		req.URL.RawQuery = query
		if post {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		sim.Handler().ServeHTTP(rec, req)

		if ct := rec.Header().Get("Content-Type"); ct != contentTypeJSON {
			t.Fatalf("content type %q", ct)
		}
		var outer map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &outer); err != nil || len(outer) != 1 {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
		for key, raw := range outer {
			if !strings.HasSuffix(key, "response") {
				t.Fatalf("key %q", key)
			}
			if rec.Code == http.StatusOK {
				continue
			}
			var e errorPayload
			if err := json.Unmarshal(raw, &e); err != nil || e.ErrorCode != rec.Code || e.ErrorText == "" || e.UUIDList == nil {
				t.Fatalf("status %d with body %s", rec.Code, rec.Body.String())
			}
		}
	})
}

// signFuzzInput signs whatever parameters parse from the input, with the
// default key, and puts them where the method carries them.
func signFuzzInput(query, body string, post bool) (string, string) {
	params, _ := url.ParseQuery(query)
	if post {
		fromBody, _ := url.ParseQuery(body)
		for k, v := range fromBody {
			params[k] = append(params[k], v...)
		}
	}
	params.Set("apiKey", DefaultAPIKey)
	params.Set("signatureversion", "3")
	params.Set("expires", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	params.Del("signature")
	params.Set("signature", signatureOf(params, DefaultSecretKey))
	if post {
		return "", params.Encode()
	}
	return params.Encode(), ""
}
