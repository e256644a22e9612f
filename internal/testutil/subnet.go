package testutil

import (
	"math/rand/v2"
	"net"
)

// FreeSubnet returns x such that 172.16.x.0/24 (x in 100-249) is on no
// interface of the host's network namespace, so a test's copy of the seed's
// web server never collides with a real one (172.16.0.0/24) or another test's.
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
	for {
		if x := 100 + rand.IntN(150); !used[x] {
			return x
		}
	}
}
