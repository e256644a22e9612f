package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseMemory reads a memory quantity the way the kernel's memparse() and
// docker read it: a byte count, or a number with K, M, G, T (optionally
// followed by B or i B, as in Kubernetes' Ki, Mi, Gi), all powers of 1024.
// So "50M", "50Mi" and "52428800" are all 52428800 bytes, as the seed's
// `echo 50M > memory.limit_in_bytes` gives.
func ParseMemory(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty quantity")
	}
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if num == "" {
		return 0, fmt.Errorf("%q is not a memory quantity (expected bytes, or a number with K, M, G or T, such as 50M)", s)
	}
	unit := strings.ToUpper(s[len(num):])
	var mult int64
	switch unit {
	case "", "B":
		mult = 1
	case "K", "KI", "KB", "KIB":
		mult = 1 << 10
	case "M", "MI", "MB", "MIB":
		mult = 1 << 20
	case "G", "GI", "GB", "GIB":
		mult = 1 << 30
	case "T", "TI", "TB", "TIB":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("%q has an unknown unit %q (expected K, M, G or T, powers of 1024)", s, s[len(num):])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n * mult, nil
}

// MinMemory is the smallest memory limit hutch accepts: below it not even a
// shell starts, and the kernel's OOM killer fires at once.
const MinMemory = 4 << 20

// ParseCPU reads a CPU quantity in cores: "1", "0.5", "1.25" or millicores
// "250m". It returns millicores.
func ParseCPU(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "m") {
		n, err := strconv.ParseInt(strings.TrimSuffix(s, "m"), 10, 64)
		if err != nil || n <= 0 || n > 1<<20 {
			return 0, fmt.Errorf("%q is not a CPU quantity above 0 (expected cores such as 1, 0.5, or millicores such as 250m)", s)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<10 {
		return 0, fmt.Errorf("%q is not a CPU quantity above 0 (expected cores such as 1, 0.5, or millicores such as 250m)", s)
	}
	m := int64(math.Round(f * 1000))
	if m < 1 {
		return 0, fmt.Errorf("%q is below the smallest CPU quantity, 1m", s)
	}
	return m, nil
}

// ParseMode reads an octal file mode such as "0644" or "1777".
func ParseMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || m > 07777 {
		return 0, fmt.Errorf("%q is not a file mode (expected octal, such as 0644 or 1777)", s)
	}
	return uint32(m), nil
}
