package requestpath

import "testing"

// BenchmarkPath measures the canonicaliser on the hot path (an already
// canonical path: no allocation) and on paths it has to rewrite.
func BenchmarkPath(b *testing.B) {
	o := Default()
	for _, bc := range []struct{ name, in string }{
		{"canonical", "/v2/code/completions"},
		{"dot_segments", "/v1/proxy/anthropic/../../../v2/code/generations"},
		{"escapes", "/v2/%63ode/%2e%2e/code/caf%c3%a9"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := o.Path(bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
