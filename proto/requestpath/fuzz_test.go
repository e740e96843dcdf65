package requestpath

import (
	"errors"
	"strings"
	"testing"
)

// FuzzPath checks the canonicaliser's contract on any input and every
// option set: a rejection is an *Error with a message, and an accepted path
// is a fixed point that starts with '/', has no "." or ".." segment, no "//"
// when merging, and only bytes a request line carries unchanged.
func FuzzPath(f *testing.F) {
	for _, tc := range corpus {
		f.Add(tc.in, uint8(0))
	}
	f.Add("/a%2F..%2Fb", uint8(1))
	f.Add("/a%2F..%2F..%2Fb", uint8(2))
	f.Add("//a//..", uint8(3))
	f.Fuzz(func(t *testing.T, in string, mode uint8) {
		o := Options{MergeSlashes: mode&4 == 0}
		o.EscapedSlashes = []EscapedSlashes{EscapedSlashesReject, EscapedSlashesKeep, EscapedSlashesUnescape, ""}[mode%4]
		got, err := o.Path(in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || messages[e.Problem] == "" {
				t.Fatalf("Path(%q): %v is not a known *Error", in, err)
			}
			return
		}
		again, err := o.Path(got)
		if err != nil || again != got {
			t.Fatalf("Path(%q) = %q, not a fixed point: %q, %v", in, got, again, err)
		}
		if got == "" || got[0] != '/' {
			t.Fatalf("Path(%q) = %q does not start with /", in, got)
		}
		for _, seg := range strings.Split(got[1:], "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Path(%q) = %q has a dot segment", in, got)
			}
		}
		if o.MergeSlashes && strings.Contains(got, "//") {
			t.Fatalf("Path(%q) = %q has //", in, got)
		}
		for i := 0; i < len(got); i++ {
			if classes[got[i]] != classKeep && got[i] != '%' {
				t.Fatalf("Path(%q) = %q has byte %q", in, got, got[i])
			}
		}
	})
}
