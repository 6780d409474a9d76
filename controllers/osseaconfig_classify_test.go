package controllers

import (
	"fmt"
	"strings"
	"testing"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// Every failure of the connection test gets its own Reason, the right verdict on whether a
// person must act, and a message that names what to fix.
func TestClassifyValidation(t *testing.T) {
	cfg := &osseav1.OsseaConfig{Spec: osseav1.OsseaConfigSpec{
		APIURL: "https://cloud.example.com/client/api", Zone: "zone1", OMAVirtualMachineID: "9c1e4b7d-2a6f-4d3c-8e5b-000000000001",
		CredentialsSecretRef: osseav1.LocalObjectReference{Name: "creds"},
	}}
	apiErr := func(class error, code int, text string) error {
		return &cloudstack.Error{Class: class, Code: code, Text: text}
	}
	check := func(c cloudstack.Check, err error) error { return &cloudstack.CheckError{Check: c, Err: err} }
	for _, c := range []struct {
		name    string
		err     error
		vmState string
		reason  string
		stalled bool
		mention string // the message must say this
	}{
		{"no Secret", fmt.Errorf("reading: %w", cloudstack.ErrSecretMissing), "", osseav1.ReasonSecretMissing, true, `Secret "creds"`},
		{"Secret without a key", fmt.Errorf("no apiKey: %w", cloudstack.ErrSecretInvalid), "", osseav1.ReasonSecretInvalid, true, "apiKey and secretKey"},
		{"bad apiURL", fmt.Errorf("parse: %w", cloudstack.ErrInvalidConfig), "", osseav1.ReasonUnreachable, true, "apiURL"},
		{"keys refused", check(cloudstack.CheckConnection, apiErr(cloudstack.ErrUnauthorized, 401, "unable to verify")), "", osseav1.ReasonUnauthorized, true, "check apiKey and secretKey"},
		{"permission denied", check(cloudstack.CheckVirtualMachine, apiErr(cloudstack.ErrPermissionDenied, 531, "Caller does not have permission to operate with provided resource")), "", osseav1.ReasonPermissionDenied, true, `Secret "creds"`},
		{"untrusted certificate", check(cloudstack.CheckConnection, apiErr(cloudstack.ErrTLS, 0, "x509: unknown authority")), "", osseav1.ReasonTLSError, true, "caBundle"},
		{"connection refused", check(cloudstack.CheckConnection, apiErr(cloudstack.ErrUnreachable, 0, "connection refused")), "", osseav1.ReasonUnreachable, false, "retrying"},
		{"no such zone", check(cloudstack.CheckZone, apiErr(cloudstack.ErrNotFound, 0, "no zone")), "", osseav1.ReasonZoneNotFound, true, "spec.zone"},
		{"no such VM", check(cloudstack.CheckVirtualMachine, apiErr(cloudstack.ErrNotFound, 0, "no VM")), "", osseav1.ReasonOMAVMNotFound, true, "spec.omaVirtualMachineID"},
		{"VM starting", check(cloudstack.CheckVirtualMachine, apiErr(cloudstack.ErrInvalidState, 0, "VM is Starting")), "Starting", osseav1.ReasonOMAVMNotUsable, false, "cannot take volumes"},
		{"VM destroyed", check(cloudstack.CheckVirtualMachine, apiErr(cloudstack.ErrInvalidState, 0, "VM is Destroyed")), "Destroyed", osseav1.ReasonOMAVMNotUsable, true, "cannot take volumes"},
		{"fixed-size offering", check(cloudstack.CheckDiskOffering, apiErr(cloudstack.ErrInvalidParameter, 0, "fixed size")), "", osseav1.ReasonDiskOfferingInvalid, true, "custom size"},
		{"server error", check(cloudstack.CheckZone, apiErr(cloudstack.ErrTransient, 530, "internal error")), "", osseav1.ReasonCloudStackError, false, "retrying"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := cfg.DeepCopy()
			cfg.Status.OMAVirtualMachineState = c.vmState
			reason, stalled, msg := classifyValidation(cfg, c.err)
			if reason != c.reason || stalled != c.stalled || !strings.Contains(msg, c.mention) {
				t.Errorf("got %s stalled=%v %q; want %s stalled=%v, a message naming %q", reason, stalled, msg, c.reason, c.stalled, c.mention)
			}
		})
	}
}
