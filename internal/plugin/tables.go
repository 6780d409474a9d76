package plugin

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// newTable writes columns the way kubectl get does: left-aligned, three spaces apart.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

func row(tw *tabwriter.Writer, cells ...string) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c)
	}
	fmt.Fprint(tw, "\n")
}

// orDash shows an unset value as kubectl does for an empty column.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age is kubectl's AGE column.
func age(created time.Time, now time.Time) string {
	if created.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(created))
}

// PrintJobs writes the jobs table; with allNamespaces it starts with a NAMESPACE column.
func PrintJobs(w io.Writer, jobs []osseav1.MigrationJob, allNamespaces bool, now time.Time) error {
	tw := newTable(w)
	head := []string{"NAME", "VM", "CONFIG", "DISKS", "PHASE", "TARGET", "AGE"}
	if allNamespaces {
		head = append([]string{"NAMESPACE"}, head...)
	}
	row(tw, head...)
	for i := range jobs {
		j := &jobs[i]
		cells := []string{j.Name, j.Spec.VMName, jobConfig(j), jobDisks(j), orDash(string(j.Status.Phase)), jobTarget(j), age(j.CreationTimestamp.Time, now)}
		if allNamespaces {
			cells = append([]string{j.Namespace}, cells...)
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

// jobConfig is where the job went (status.placement); "-" until it is placed, whatever
// the spec asks for, as that is a wish and the column says where the disks are.
func jobConfig(j *osseav1.MigrationJob) string {
	if j.Status.Placement == nil {
		return "-"
	}
	return j.Status.Placement.OsseaConfigName
}

// jobDisks is ready/total; before the controller has counted, 0 of the spec's disks.
func jobDisks(j *osseav1.MigrationJob) string {
	if c := j.Status.DiskCount; c != nil {
		return fmt.Sprintf("%d/%d", c.Ready, c.Total)
	}
	return fmt.Sprintf("0/%d", len(j.Spec.Disks))
}

func jobTarget(j *osseav1.MigrationJob) string {
	if j.Spec.Cutover == nil {
		return "-"
	}
	return j.Spec.Cutover.TargetVirtualMachineID
}

// OrphanReport is what the orphans command found, for its table and its notes.
type OrphanReport struct {
	// Rows is one per listed volume id.
	Rows [][4]string
	// Notes are lines for stderr: configs with more orphans than listed, configs not
	// checked yet, or that there are none.
	Notes []string
}

// Orphans turns the configs' status.orphans into rows (namespace, config, policy, volume
// id) and notes. where names the scope for the "none" note ("namespace x", "any
// namespace").
func Orphans(configs []osseav1.OsseaConfig, where string) OrphanReport {
	var r OrphanReport
	var unchecked []string
	total := 0
	for i := range configs {
		c := &configs[i]
		o := c.Status.Orphans
		if o == nil {
			unchecked = append(unchecked, c.Namespace+"/"+c.Name)
			continue
		}
		total += int(o.Count)
		for _, id := range o.VolumeIDs {
			r.Rows = append(r.Rows, [4]string{c.Namespace, c.Name, policy(c), id})
		}
		if int(o.Count) > len(o.VolumeIDs) {
			r.Notes = append(r.Notes, fmt.Sprintf("note: %s/%s has %d orphans; its status lists %d (at most %d, the longest orphaned first)",
				c.Namespace, c.Name, o.Count, len(o.VolumeIDs), osseav1.MaxReportedOrphans))
		}
	}
	if len(unchecked) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("note: not checked for orphans yet (status.orphans unset): %s", joinMax(unchecked, 10)))
	}
	if total == 0 {
		checked := len(configs) - len(unchecked)
		r.Notes = append(r.Notes, fmt.Sprintf("No orphans found in %s (%d %s checked).", where, checked, plural(checked, "OsseaConfig")))
	}
	return r
}

// policy is the config's orphanPolicy as the manager reads it (Report when unset), with
// the grace period for Delete, which decides when the row goes away.
func policy(c *osseav1.OsseaConfig) string {
	switch c.Spec.OrphanPolicy {
	case "", osseav1.OrphanReport:
		return string(osseav1.OrphanReport)
	}
	grace := "24h"
	if g := c.Spec.OrphanGracePeriod; g != nil {
		grace = g.Duration.String()
	}
	return fmt.Sprintf("%s(after %s)", c.Spec.OrphanPolicy, grace)
}

// PrintOrphans writes the orphans table, or nothing when there are no rows.
func PrintOrphans(w io.Writer, rows [][4]string) error {
	if len(rows) == 0 {
		return nil
	}
	tw := newTable(w)
	row(tw, "NAMESPACE", "CONFIG", "POLICY", "VOLUME ID")
	for _, r := range rows {
		row(tw, r[0], r[1], r[2], r[3])
	}
	return tw.Flush()
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// joinMax lists at most max items, then how many more.
func joinMax(items []string, max int) string {
	if len(items) <= max {
		return join(items)
	}
	return join(items[:max]) + " and " + strconv.Itoa(len(items)-max) + " more"
}

func join(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
