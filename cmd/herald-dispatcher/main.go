// Command herald-dispatcher is Herald's data plane on its own: the ingress
// of the Topics it serves and the delivery to their Subscriptions, the same
// as herald dispatcher, with the same flags (-h lists them). It links none
// of the control plane (controller-runtime, the API types, the embedded
// NATS server), so that a dispatcher Pod's memory holds little but its own
// work. The operator's dispatcher Deployments run it.
package main

import (
	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/dispatchercmd"
)

func main() {
	cli.Main("herald-dispatcher", dispatchercmd.Run)
}
