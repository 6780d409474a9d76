// Package argocd holds the Argo CD health check of the ossea kinds; this test runs it in
// gopher-lua, the Lua Argo CD itself embeds, on the status shapes the controllers write.
package argocd

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

func TestHealthCheck(t *testing.T) {
	script, err := os.ReadFile("health.lua")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, obj, status, message string
	}{
		{"new object", `{"metadata":{"generation":1},"status":{"observedGeneration":-1}}`, "Progressing", "Waiting for the controller"},
		{"old generation", `{"metadata":{"generation":2},"status":{"observedGeneration":1,
			"conditions":[{"type":"Ready","status":"True","reason":"Mounted","message":"mounted"}]}}`, "Progressing", "Waiting for the controller"},
		{"ready", `{"metadata":{"generation":1},"status":{"observedGeneration":1,
			"conditions":[{"type":"Attached","status":"True","reason":"Attached","message":"a"},
			{"type":"Ready","status":"True","reason":"Mounted","message":"mounted at /mnt/migration/j/d"}]}}`, "Healthy", "mounted at /mnt/migration/j/d"},
		{"working", `{"metadata":{"generation":1},"status":{"observedGeneration":1,
			"conditions":[{"type":"Ready","status":"False","reason":"Attaching","message":"attaching"},
			{"type":"Reconciling","status":"True","reason":"Attaching","message":"attaching"}]}}`, "Progressing", "Attaching: attaching"},
		{"stalled", `{"metadata":{"generation":3},"status":{"observedGeneration":3,
			"conditions":[{"type":"Ready","status":"False","reason":"VolumeLost","message":"gone"},
			{"type":"Stalled","status":"True","reason":"VolumeLost","message":"gone"}]}}`, "Degraded", "VolumeLost: gone"},
		// A MigrationJob's shapes: waiting for slots, Ready, and one that can never fit.
		{"job waiting for slots", `{"metadata":{"generation":1},"status":{"observedGeneration":1,"phase":"Pending",
			"conditions":[{"type":"Placed","status":"False","reason":"InsufficientCapacity","message":"needs 3 free data-disk slots on one OMA VM; oma-a: 1 of 16 free"},
			{"type":"Ready","status":"False","reason":"InsufficientCapacity","message":"needs 3 free data-disk slots on one OMA VM; oma-a: 1 of 16 free"},
			{"type":"Reconciling","status":"True","reason":"InsufficientCapacity","message":"needs 3"}]}}`,
			"Progressing", "InsufficientCapacity: needs 3 free data-disk slots on one OMA VM; oma-a: 1 of 16 free"},
		{"job ready", `{"metadata":{"generation":1},"status":{"observedGeneration":1,"phase":"Ready","disksReady":"3/3",
			"conditions":[{"type":"Placed","status":"True","reason":"Placed","message":"placed on OsseaConfig oma-a"},
			{"type":"Ready","status":"True","reason":"DisksReady","message":"3/3 disks Ready on OsseaConfig oma-a"}]}}`,
			"Healthy", "3/3 disks Ready on OsseaConfig oma-a"},
		{"job never fits", `{"metadata":{"generation":1},"status":{"observedGeneration":1,"phase":"Failed",
			"conditions":[{"type":"Ready","status":"False","reason":"InsufficientCapacity","message":"the job's 40 disks can never fit"},
			{"type":"Stalled","status":"True","reason":"InsufficientCapacity","message":"the job's 40 disks can never fit"}]}}`,
			"Degraded", "InsufficientCapacity: the job's 40 disks can never fit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, message := run(t, string(script), tc.obj)
			if status != tc.status || message != tc.message {
				t.Errorf("health = %s %q, want %s %q", status, message, tc.status, tc.message)
			}
		})
	}
}

// The README shows the script for copying into argocd-cm; it must be this one.
func TestReadmeShowsThisScript(t *testing.T) {
	script, err := os.ReadFile("health.lua")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(script)), "\n") {
		if strings.HasPrefix(line, "--") {
			continue
		}
		if !strings.Contains(string(readme), "    "+line+"\n") {
			t.Errorf("README lacks the script line %q", line)
		}
	}
}

func run(t *testing.T, script, objJSON string) (status, message string) {
	t.Helper()
	var obj any
	if err := json.Unmarshal([]byte(objJSON), &obj); err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatalf("the script failed: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the script returned %v, not a table", L.Get(-1))
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

// toLua converts decoded JSON as Argo CD does: objects and arrays become tables.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}
