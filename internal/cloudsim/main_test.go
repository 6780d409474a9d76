package cloudsim_test

import (
	"testing"

	"github.com/migratekit/ossea-operator/test/world"
)

// The hypervisor's tests make real loop devices; they live in the sandbox, so a failed or
// panicking run leaves none behind.
func TestMain(m *testing.M) {
	world.Main(m, world.Needs{Root: true, Tools: []string{"losetup"}}, nil)
}
