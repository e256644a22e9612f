package testutil

import (
	"math/rand/v2"
	"net"
	"sync"
)

var (
	givenMu sync.Mutex
	given   = map[int]bool{} // subnets FreeSubnet returned in this process
)

// FreeSubnet returns x such that 172.16.x.0/24 (x in 100-249) is on no
// interface of the host's network namespace and was not returned before in
// this test binary (two labs of one test are picked before either is up),
// so a test's copy of the seed's web server never collides with a real one
// (172.16.0.0/24) or another test's.
func FreeSubnet() int {
	used := map[int]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4[0] == 172 && ip4[1] == 16 {
				used[int(ip4[2])] = true
			}
		}
	}
	givenMu.Lock()
	defer givenMu.Unlock()
	if len(given) > 100 {
		clear(given) // a long run: those labs are gone
	}
	for {
		if x := 100 + rand.IntN(150); !used[x] && !given[x] {
			given[x] = true
			return x
		}
	}
}
