package main

import "github.com/herald-dev/herald/internal/dispatchercmd"

// herald dispatcher is the command herald-dispatcher runs; it stays for the
// dispatcher Deployments of operators that start it this way.
func init() {
	commands["dispatcher"] = dispatchercmd.Run
}
