package v1alpha1_test

import (
	"math"
	"testing"

	"k8s.io/utils/ptr"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// A job's disk may give its size as the source reports it, in bytes; the volume must be at
// least that large, in whole GiB. This test needs no API server (the package's TestMain
// starts one for the schema tests all the same).
func TestVolumeSizeGiB(t *testing.T) {
	const gib = int64(1) << 30
	cases := []struct {
		name string
		disk osseav1.MigrationJobDisk
		want int32
	}{
		// sizeGiB is taken as it is.
		{"sizeGiB 1", osseav1.MigrationJobDisk{SizeGiB: ptr.To[int32](1)}, 1},
		{"sizeGiB 40", osseav1.MigrationJobDisk{SizeGiB: ptr.To[int32](40)}, 40},
		{"sizeGiB maximum", osseav1.MigrationJobDisk{SizeGiB: ptr.To[int32](osseav1.MaxDiskSizeGiB)}, 65536},
		// capacityBytes is rounded up to whole GiB.
		{"1 byte", osseav1.MigrationJobDisk{CapacityBytes: ptr.To[int64](1)}, 1},
		{"1 byte under 1 GiB", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(gib - 1)}, 1},
		{"exactly 1 GiB", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(gib)}, 1},
		{"1 byte over 1 GiB", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(gib + 1)}, 2},
		{"1 byte under 2 GiB", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(2*gib - 1)}, 2},
		{"exactly 40 GiB", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(40 * gib)}, 40},
		{"40 GiB and 512 bytes (the issue's example)", osseav1.MigrationJobDisk{CapacityBytes: ptr.To[int64](42949673472)}, 41},
		{"1 byte over 40 GiB", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(40*gib + 1)}, 41},
		{"a VMware 100 GB disk (10^11 bytes)", osseav1.MigrationJobDisk{CapacityBytes: ptr.To[int64](100_000_000_000)}, 94},
		{"1 byte under the maximum", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(osseav1.MaxDiskCapacityBytes - 1)}, 65536},
		{"exactly the maximum", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(osseav1.MaxDiskCapacityBytes)}, 65536},
		// Disks the API server refuses give 0, never a size nobody asked for.
		{"neither", osseav1.MigrationJobDisk{}, 0},
		{"both", osseav1.MigrationJobDisk{SizeGiB: ptr.To[int32](1), CapacityBytes: ptr.To(gib)}, 0},
		{"sizeGiB 0", osseav1.MigrationJobDisk{SizeGiB: ptr.To[int32](0)}, 0},
		{"sizeGiB negative", osseav1.MigrationJobDisk{SizeGiB: ptr.To[int32](-1)}, 0},
		{"sizeGiB over the maximum", osseav1.MigrationJobDisk{SizeGiB: ptr.To[int32](osseav1.MaxDiskSizeGiB + 1)}, 0},
		{"capacityBytes 0", osseav1.MigrationJobDisk{CapacityBytes: ptr.To[int64](0)}, 0},
		{"capacityBytes negative", osseav1.MigrationJobDisk{CapacityBytes: ptr.To[int64](-1)}, 0},
		{"capacityBytes 1 byte over the maximum", osseav1.MigrationJobDisk{CapacityBytes: ptr.To(osseav1.MaxDiskCapacityBytes + 1)}, 0},
		{"capacityBytes MaxInt64", osseav1.MigrationJobDisk{CapacityBytes: ptr.To[int64](math.MaxInt64)}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.disk.VolumeSizeGiB(); got != tc.want {
				t.Errorf("VolumeSizeGiB() = %d, want %d", got, tc.want)
			}
		})
	}
	if osseav1.MaxDiskCapacityBytes != 70368744177664 {
		t.Errorf("MaxDiskCapacityBytes = %d; the capacityBytes marker says 70368744177664", osseav1.MaxDiskCapacityBytes)
	}
}
