package cloudstack

import (
	"fmt"
	"testing"
)

func TestJobTargetsBounded(t *testing.T) {
	j := newJobTargets()
	for i := range maxJobTargets + 10 {
		j.remember(fmt.Sprint(i), jobTarget{volumeID: "v", vmID: "m"})
	}
	if len(j.m) != maxJobTargets {
		t.Fatalf("%d entries kept", len(j.m))
	}
	j.remember("", jobTarget{})
	if _, ok := j.lookup(""); ok {
		t.Fatal("an empty job id must not be remembered")
	}
	last := fmt.Sprint(maxJobTargets + 9)
	if got, ok := j.lookup(last); !ok || got.vmID != "m" {
		t.Fatal("the newest entry must be there")
	}
	j.forget(last)
	if _, ok := j.lookup(last); ok {
		t.Fatal("forget kept the entry")
	}
}
