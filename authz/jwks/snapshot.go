package jwks

import "time"

// Snapshot is one immutable, validated key set of an issuer. It is replaced,
// never modified, so readers need no lock.
type Snapshot struct {
	keys    []*Key
	byKID   map[string]*Key
	byThumb map[string]*Key
	// FetchedAt is when the keys were read.
	FetchedAt time.Time
	// FreshUntil is when the keys should have been refreshed (zero for a
	// local file, which is watched instead).
	FreshUntil time.Time
	// UsableUntil is when the keys stop being served if no refresh
	// succeeded: FreshUntil + stale_max_age (zero: never).
	UsableUntil time.Time
}

func newSnapshot(keys []*Key, prev *Snapshot) *Snapshot {
	s := &Snapshot{
		keys:    make([]*Key, 0, len(keys)),
		byKID:   make(map[string]*Key, len(keys)),
		byThumb: make(map[string]*Key, len(keys)),
	}
	for _, k := range keys {
		// Keep the identity of keys that did not change, so that tokens
		// verified by them stay cached across refreshes.
		if prev != nil {
			if old := prev.byThumb[k.Thumbprint]; old != nil && old.KID == k.KID && old.Alg == k.Alg {
				k = old
			}
		}
		s.keys = append(s.keys, k)
		if k.KID != "" {
			s.byKID[k.KID] = k
		}
		s.byThumb[k.Thumbprint] = k
	}
	return s
}

// Keys returns the keys in document order. The slice must not be modified.
func (s *Snapshot) Keys() []*Key { return s.keys }

// Key returns the key with the given kid.
func (s *Snapshot) Key(kid string) (*Key, bool) {
	k, ok := s.byKID[kid]
	return k, ok
}

// Contains reports whether k (the same key, by identity) is still in the
// snapshot: false once a rotation removed it.
func (s *Snapshot) Contains(k *Key) bool {
	return s.byThumb[k.Thumbprint] == k
}

// usableAt reports whether the keys may still be served at now.
func (s *Snapshot) usableAt(now time.Time) bool {
	return s.UsableUntil.IsZero() || now.Before(s.UsableUntil)
}
