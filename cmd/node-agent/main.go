// Command node-agent is a placeholder until its issue lands; it builds so the tree stays whole.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "node-agent: not implemented yet")
	os.Exit(2)
}
