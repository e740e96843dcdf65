package requestpath

import (
	"errors"
	"strings"
	"testing"
)

// corpus is the traversal and encoding corpus: every input is either
// normalised to want or rejected with problem (default options).
var corpus = []struct {
	in      string
	want    string
	problem Problem
}{
	{in: "/", want: "/"},
	{in: "/v2/code/completions", want: "/v2/code/completions"},
	{in: "/v2/code/completions/", want: "/v2/code/completions/"},
	// dot segments (RFC 3986 §5.2.4)
	{in: "/v1/proxy/anthropic/../../../v2/code/generations", want: "/v2/code/generations"},
	{in: "/v2/./code/./completions", want: "/v2/code/completions"},
	{in: "/v2/code/completions/.", want: "/v2/code/completions/"},
	{in: "/v2/code/x/..", want: "/v2/code/"},
	{in: "/../../v2/code/completions", want: "/v2/code/completions"},
	{in: "/..", want: "/"},
	{in: "/.", want: "/"},
	{in: "/a/...", want: "/a/..."},
	{in: "/a/.hidden/..b", want: "/a/.hidden/..b"},
	// encoded dots, any case
	{in: "/v1/proxy/anthropic/%2e%2e/%2E%2E/%2e./v2/code/generations", want: "/v2/code/generations"},
	{in: "/v2/%2e/code/completions", want: "/v2/code/completions"},
	// unreserved characters decoded, other escapes upper-cased
	{in: "/v2/%63ode/%43ompletions", want: "/v2/code/Completions"},
	{in: "/a%7e%2D%5f", want: "/a~-_"},
	{in: "/a%3bb%3D", want: "/a%3Bb%3D"},
	{in: "/a%25zz", want: "/a%25zz"},
	{in: "/a%3F%23", want: "/a%3F%23"},
	// characters that are not pchars are percent-encoded
	{in: `/a"b<c>{d}|e^f` + "`", want: "/a%22b%3Cc%3E%7Bd%7D%7Ce%5Ef%60"},
	{in: "/a;b=c,d:e@f!$&'()*+", want: "/a;b=c,d:e@f!$&'()*+"},
	// duplicate slashes merged
	{in: "//v2//code///completions", want: "/v2/code/completions"},
	{in: "/v2/code/completions//", want: "/v2/code/completions/"},
	{in: "/a/..//b", want: "/b"},
	{in: "/a//./b", want: "/a/b"},
	{in: "/a//../b", problem: ProblemAmbiguousDots},
	{in: "/a//./../b", problem: ProblemAmbiguousDots},
	// encoded slashes and backslashes (default: reject)
	{in: "/v1/proxy/anthropic%2F..%2F..%2Fv2", problem: ProblemEncodedSlash},
	{in: "/a%2fb", problem: ProblemEncodedSlash},
	{in: "/a%5Cb", problem: ProblemEncodedSlash},
	{in: `/v1\..\v2`, problem: ProblemBackslash},
	// NUL and control characters, raw or encoded
	{in: "/a\x00b", problem: ProblemControl},
	{in: "/a%00b", problem: ProblemControl},
	{in: "/a%0d%0aX: y", problem: ProblemControl},
	{in: "/a b", problem: ProblemControl},
	{in: "/a\tb", problem: ProblemControl},
	{in: "/a\x7f", problem: ProblemControl},
	{in: "/a%7F", problem: ProblemControl},
	// fragments and query delimiters
	{in: "/a#/../../b", problem: ProblemFragment},
	{in: "/a?b", problem: ProblemQueryDelimiter},
	// invalid escapes
	{in: "/a%", problem: ProblemBadEscape},
	{in: "/a%2", problem: ProblemBadEscape},
	{in: "/a%zz", problem: ProblemBadEscape},
	{in: "/a%%2e", problem: ProblemBadEscape},
	// UTF-8: valid is percent-encoded, overlong and invalid rejected
	{in: "/caf\u00e9", want: "/caf%C3%A9"},
	{in: "/caf%c3%a9", want: "/caf%C3%A9"},
	{in: "/caf%C3\xa9", want: "/caf%C3%A9"},
	{in: "/\u65e5\u672c", want: "/%E6%97%A5%E6%9C%AC"},
	{in: "/%F0%9F%98%80", want: "/%F0%9F%98%80"},
	{in: "/%c0%ae%c0%ae/v2", problem: ProblemOverlongUTF8},
	{in: "/%c0%af", problem: ProblemOverlongUTF8},
	{in: "/%e0%80%ae", problem: ProblemOverlongUTF8},
	{in: "/%f0%80%80%ae", problem: ProblemOverlongUTF8},
	{in: "/\xc0\xae", problem: ProblemOverlongUTF8},
	{in: "/%ff", problem: ProblemInvalidUTF8},
	{in: "/a\xff", problem: ProblemInvalidUTF8},
	{in: "/%c3", problem: ProblemInvalidUTF8},
	{in: "/%c3x", problem: ProblemInvalidUTF8},
	{in: "/%80", problem: ProblemInvalidUTF8},
	{in: "/%ed%a0%80", problem: ProblemInvalidUTF8}, // a UTF-16 surrogate
	// path parameters on dot segments (Tomcat's /..;/)
	{in: "/v1/proxy/anthropic/..;/..;/v2", problem: ProblemDotParameter},
	{in: "/a/.;x/b", problem: ProblemDotParameter},
	{in: "/a/b;x/c", want: "/a/b;x/c"},
	// shape and length
	{in: "", problem: ProblemNotAbsolute},
	{in: "v2/code", problem: ProblemNotAbsolute},
	{in: "*", problem: ProblemNotAbsolute},
	{in: "/" + strings.Repeat("a", MaxLength), problem: ProblemTooLong},
	{in: "/" + strings.Repeat("{", MaxLength/2), problem: ProblemTooLong}, // too long once escaped
}

func TestPathCorpus(t *testing.T) {
	o := Default()
	for _, tc := range corpus {
		got, err := o.Path(tc.in)
		if tc.problem != "" {
			var e *Error
			if !errors.As(err, &e) || e.Problem != tc.problem {
				t.Errorf("Path(%q) = %q, %v; want problem %s", tc.in, got, err, tc.problem)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Path(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if again, err := o.Path(got); err != nil || again != got {
			t.Errorf("Path(%q) = %q is not a fixed point: %q, %v", tc.in, got, again, err)
		}
	}
}

func TestPathOptions(t *testing.T) {
	cases := []struct {
		opts    Options
		in      string
		want    string
		problem Problem
	}{
		{Options{MergeSlashes: false}, "//v2//code/", "//v2//code/", ""},
		{Options{MergeSlashes: false}, "/a//../b", "/a/b", ""},
		{Options{MergeSlashes: true, EscapedSlashes: EscapedSlashesKeep}, "/a%2fb%5c/../c", "/c", ""},
		{Options{MergeSlashes: true, EscapedSlashes: EscapedSlashesKeep}, "/a%2f..%2f..%2fb", "/a%2F..%2F..%2Fb", ""},
		{Options{MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescape}, "/v1/proxy/x%2F..%2F..%2F..%2Fv2/code", "/v2/code", ""},
		{Options{MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescape}, "/a%5cb", "", ProblemEncodedSlash},
		{Options{MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescape}, "/a%2F%2Fb", "/a/b", ""},
	}
	for _, tc := range cases {
		got, err := tc.opts.Path(tc.in)
		if tc.problem != "" {
			var e *Error
			if !errors.As(err, &e) || e.Problem != tc.problem {
				t.Errorf("%+v Path(%q) = %q, %v; want %s", tc.opts, tc.in, got, err, tc.problem)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v Path(%q) = %q, %v; want %q", tc.opts, tc.in, got, err, tc.want)
		}
	}
	// The keep example shows why keep is only safe when the backend keeps
	// %2F as data too: its ".." is inside a segment.
	if err := (Options{EscapedSlashes: "bogus"}).Validate(); err == nil {
		t.Error("an unknown escaped slash action validated")
	}
}

func TestTarget(t *testing.T) {
	o := Default()
	cases := []struct {
		in, path, query string
		problem         Problem
	}{
		{in: "/a/../b?x=%2e%2e/y&z", path: "/b", query: "x=%2e%2e/y&z"},
		{in: "/a?", path: "/a", query: ""},
		{in: "/a?b?c", path: "/a", query: "b?c"},
		{in: "/a?q=1#frag", problem: ProblemFragment},
		{in: "/a?q=\x00", problem: ProblemControl},
		{in: "/a?q=a b", problem: ProblemControl},
		{in: "/a?q=\xff", problem: ProblemInvalidUTF8},
		{in: "/a?q=\u00e9", path: "/a", query: "q=\u00e9"},
		{in: "/a%2f?q", problem: ProblemEncodedSlash},
	}
	for _, tc := range cases {
		p, q, err := o.Target(tc.in)
		if tc.problem != "" {
			var e *Error
			if !errors.As(err, &e) || e.Problem != tc.problem {
				t.Errorf("Target(%q) = %q, %q, %v; want %s", tc.in, p, q, err, tc.problem)
			}
			continue
		}
		if err != nil || p != tc.path || q != tc.query {
			t.Errorf("Target(%q) = %q, %q, %v; want %q, %q", tc.in, p, q, err, tc.path, tc.query)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := Default().Path("/a/%2f/b")
	want := "the request path has an encoded slash or backslash (%2F or %5C), which proxies and backends decode differently (at byte 3)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	for p := range messages {
		if !strings.Contains((&Error{Problem: p, Part: "path", Offset: -1}).Error(), " ") {
			t.Errorf("problem %s has no message", p)
		}
	}
}

func TestCanonicalPathDoesNotAllocate(t *testing.T) {
	o := Default()
	if n := testing.AllocsPerRun(100, func() { _, _ = o.Path("/v2/code/completions") }); n != 0 {
		t.Errorf("canonical path allocates %v times", n)
	}
}
