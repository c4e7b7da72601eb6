// Command etcd is the stock etcd server, built from the pinned
// go.etcd.io/etcd/server/v3 module for controller-runtime's envtest (see
// hack/envtest-assets.sh). It mirrors etcd's own main package.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
