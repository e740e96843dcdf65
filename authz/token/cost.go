package token

import "unsafe"

// The verified-token cache bounds itself by an estimate of the heap bytes
// its entries hold (caches.token_bytes); entryCost is that estimate, built
// from what an entry references, each allocation rounded up to the
// runtime's size classes. BenchmarkTokenCacheEntryBytes and
// TestEntryCostIsHonest compare it with the measured heap.

// Fixed parts of every entry: the cacheEntry and its entryState, the hex
// hash string, and the entry's slot in its shard's map (key, pointer and
// control byte at the map's 7/8 load factor).
var (
	entryFixed = sizeClass(int(unsafe.Sizeof(cacheEntry{}))) + sizeClass(int(unsafe.Sizeof(entryState{}))) +
		sizeClass(64) + (32+8+1)*8/7
	// claimsFixed is the Claims and what they remember once asked: the
	// grant digest and one claim-set key (at most maxClaimKeyLen bytes).
	claimsFixed = sizeClass(int(unsafe.Sizeof(Claims{}))) + 16 + sizeClass(64) +
		sizeClass(int(unsafe.Sizeof(claimKeyMemo{}))) + sizeClass(maxClaimKeyLen)
)

// entryCost estimates the heap bytes of one cache entry in state st.
func entryCost(st *entryState) int {
	n := entryFixed
	if st.payload != nil {
		n += sizeClass(cap(st.payload))
	}
	if c := st.claims; c != nil {
		n += claimsCost(c)
	}
	return n
}

// claimsCost estimates the heap bytes of promoted claims: the Claims, their
// decoded payload map and its values, and the strings only this token holds
// (subject, jti, instance id; shared values and lists cost their interface
// boxes only).
func claimsCost(c *Claims) int {
	n := claimsFixed + mapCost(len(c.Raw))
	for k, v := range c.Raw {
		shared := sharedValue(k) || sharedList(k)
		n += valueCost(v, shared)
	}
	return n
}

// mapCost is a string→any map of n entries: its header and one table of
// 8-slot groups (8 control bytes and 8 × 32-byte slots) at a 7/8 load
// factor, plus the table and its directory beyond 8 entries.
func mapCost(n int) int {
	const header, group = 48, 8 + 8*32
	if n <= 8 {
		return header + sizeClass(group)
	}
	slots := 16
	for slots*7/8 < n {
		slots *= 2
	}
	return header + 48 + 8 + sizeClass(slots/8*group)
}

// valueCost is one decoded JSON value behind an interface. A shared value
// costs its box only.
func valueCost(v any, shared bool) int {
	switch t := v.(type) {
	case nil, bool:
		return 0
	case float64:
		return 8
	case string:
		if shared {
			return 16
		}
		return 16 + sizeClass(len(t))
	case []any:
		if shared {
			return 24
		}
		n := 24 + sizeClass(16*cap(t))
		for _, x := range t {
			n += valueCost(x, false)
		}
		return n
	case map[string]any:
		n := mapCost(len(t))
		for _, x := range t {
			n += 16 + valueCost(x, false)
		}
		return n
	}
	return 16
}

// sizeClass rounds an allocation of n bytes up to the runtime's size class
// (the classes of runtime/sizeclasses.go up to 32 KiB, 8 KiB pages beyond).
func sizeClass(n int) int {
	if n <= 0 {
		return 0
	}
	for _, c := range sizeClasses {
		if n <= c {
			return c
		}
	}
	return (n + 8191) &^ 8191
}

var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
	2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240,
	10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}
