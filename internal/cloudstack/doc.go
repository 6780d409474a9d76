// Package cloudstack is the operator's one door to CloudStack (OSSEA).
//
// Controllers get a Cloud from a Factory and never see cloudstack-go. Every call is
// non-blocking with respect to CloudStack's async jobs: operations that start a job return
// its id at once, and PollJob reports on it later, so a reconcile worker never waits for a
// job and can resume from status after a restart.
//
// Every error that leaves this package is an *Error (or wraps one) whose class can be tested
// with errors.Is against the Err* sentinels, and whose text has had the API key, the secret
// key and any request signature removed, so it is safe for logs, events and status.
package cloudstack
