package requestpath

import (
	"strings"
	"unicode/utf8"
)

const upperHex = "0123456789ABCDEF"

// class is what a raw path byte is to the canonicaliser.
type class uint8

const (
	classKeep    class = iota // unreserved, sub-delims, ':', '@', '/': kept as is
	classEscape               // printable ASCII that is not a pchar: percent-encoded
	classControl              // space, control characters, DEL: rejected
	classSpecial              // '%', '#', '?', '\\', non-ASCII: handled one by one
)

var classes = func() (t [256]class) {
	for c := 0; c < 256; c++ {
		switch {
		case c <= ' ' || c == 0x7f:
			t[c] = classControl
		case c >= 0x80 || c == '%' || c == '#' || c == '?' || c == '\\':
			t[c] = classSpecial
		case isUnreserved(byte(c)) || strings.IndexByte("!$&'()*+,;=:@/", byte(c)) >= 0:
			t[c] = classKeep
		default:
			t[c] = classEscape
		}
	}
	return t
}()

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// Path returns the canonical form of an origin-form path (the query already
// split off, see Target), or an *Error. The canonical form contains only
// unreserved characters, sub-delims, ':', '@', '/' and upper-case
// percent-escapes of everything else; it has no "." or ".." segment and,
// with MergeSlashes, no "//". Path(Path(p)) == Path(p).
func (o Options) Path(p string) (string, error) {
	if len(p) > MaxLength {
		return "", pathError(ProblemTooLong, -1)
	}
	if p == "" || p[0] != '/' {
		return "", pathError(ProblemNotAbsolute, -1)
	}
	if o.isCanonical(p) {
		return p, nil
	}
	buf, err := o.decode(p)
	if err != nil {
		return "", err
	}
	out, err := o.removeDots(buf)
	if err == nil && len(out) > MaxLength {
		// Escaping grew it past the limit; it must still hold for the
		// result, or canonical paths would not be fixed points.
		return "", pathError(ProblemTooLong, -1)
	}
	return out, err
}

// isCanonical is the allocation-free fast path: only kept bytes, no "//"
// (when merging) and no segment starting with '.'.
func (o Options) isCanonical(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if classes[c] != classKeep {
			return false
		}
		if c == '/' && i+1 < len(p) && (p[i+1] == '.' || (o.MergeSlashes && p[i+1] == '/')) {
			return false
		}
	}
	return true
}

// decode normalises p byte by byte: unreserved escapes decoded, other
// escapes upper-cased, non-pchar ASCII and UTF-8 percent-encoded, %2F and
// %5C per the options, everything ambiguous rejected.
func (o Options) decode(p string) ([]byte, error) {
	buf := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); {
		c := p[i]
		switch classes[c] {
		case classKeep:
			buf = append(buf, c)
			i++
			continue
		case classEscape:
			buf = appendEscape(buf, c)
			i++
			continue
		case classControl:
			return nil, pathError(ProblemControl, i)
		}
		switch {
		case c == '#':
			return nil, pathError(ProblemFragment, i)
		case c == '?':
			return nil, pathError(ProblemQueryDelimiter, i)
		case c == '\\':
			return nil, pathError(ProblemBackslash, i)
		case c >= 0x80:
			var err error
			if buf, i, err = appendUTF8(buf, p, i); err != nil {
				return nil, err
			}
			continue
		}
		// c == '%'
		b, ok := unhex(p, i)
		if !ok {
			return nil, pathError(ProblemBadEscape, i)
		}
		switch {
		case isUnreserved(b):
			buf = append(buf, b)
		case b == '/' || b == '\\':
			switch {
			case o.EscapedSlashes == EscapedSlashesKeep:
				buf = appendEscape(buf, b)
			case o.EscapedSlashes == EscapedSlashesUnescape && b == '/':
				buf = append(buf, '/')
			default:
				return nil, pathError(ProblemEncodedSlash, i)
			}
		case b < ' ' || b == 0x7f:
			return nil, pathError(ProblemControl, i)
		case b >= 0x80:
			var err error
			if buf, i, err = appendUTF8(buf, p, i); err != nil {
				return nil, err
			}
			continue
		default:
			buf = appendEscape(buf, b)
		}
		i += 3
	}
	return buf, nil
}

// unhex decodes the escape "%XY" at p[i], reporting false when it is not
// one.
func unhex(p string, i int) (byte, bool) {
	if i+2 >= len(p) {
		return 0, false
	}
	h, ok1 := hexVal(p[i+1])
	l, ok2 := hexVal(p[i+2])
	return h<<4 | l, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func appendEscape(buf []byte, b byte) []byte {
	return append(buf, '%', upperHex[b>>4], upperHex[b&0xf])
}

// appendUTF8 reads one UTF-8 sequence starting at p[i], whose bytes may each
// be raw or percent-encoded, and appends it percent-encoded. Overlong and
// otherwise invalid sequences are rejected: a backend decoding them loosely
// (%C0%AE as '.') would see a different path.
func appendUTF8(buf []byte, p string, i int) ([]byte, int, error) {
	start := i
	var seq [4]byte
	n := 0
	for n < 4 && i < len(p) {
		var b byte
		step := 1
		if p[i] == '%' {
			var ok bool
			if b, ok = unhex(p, i); !ok {
				if n == 0 {
					return nil, 0, pathError(ProblemBadEscape, i)
				}
				break
			}
			step = 3
		} else {
			b = p[i]
		}
		if b < 0x80 || (n > 0 && b >= 0xC0) {
			break // not part of this sequence
		}
		seq[n] = b
		n++
		i += step
		if n == seqLen(seq[0]) {
			break
		}
	}
	if overlong(seq[:n]) {
		return nil, 0, pathError(ProblemOverlongUTF8, start)
	}
	if r, size := utf8.DecodeRune(seq[:n]); r == utf8.RuneError || size != n {
		return nil, 0, pathError(ProblemInvalidUTF8, start)
	}
	for _, b := range seq[:n] {
		buf = appendEscape(buf, b)
	}
	return buf, i, nil
}

// seqLen is the length of the UTF-8 sequence a lead byte starts (1 for a
// byte that cannot start one, which then fails to decode).
func seqLen(lead byte) int {
	switch {
	case lead >= 0xF0:
		return 4
	case lead >= 0xE0:
		return 3
	case lead >= 0xC0:
		return 2
	}
	return 1
}

// overlong reports a sequence that encodes a code point in more bytes than
// it needs (C0/C1 leads, E0 80–9F, F0 80–8F): the classic way to smuggle
// '.' or '/' past a decoder.
func overlong(seq []byte) bool {
	if len(seq) == 0 {
		return false
	}
	switch lead := seq[0]; {
	case lead == 0xC0 || lead == 0xC1:
		return true
	case lead == 0xE0 && len(seq) > 1:
		return seq[1] < 0xA0
	case lead == 0xF0 && len(seq) > 1:
		return seq[1] < 0x90
	}
	return false
}

// removeDots removes dot segments (RFC 3986 §5.2.4) from a decoded path
// and merges empty segments when configured. A ".." after an empty segment
// is ambiguous with merging: nginx merges first (removing the segment
// before the "//"), Envoy removes dots first (removing the empty one).
func (o Options) removeDots(buf []byte) (string, error) {
	segs := strings.Split(string(buf[1:]), "/") // after the leading '/'
	out := make([]string, 0, len(segs))
	trailingSlash := false
	skippedEmpty := false
	for i, seg := range segs {
		last := i == len(segs)-1
		if dot, _, hasParam := strings.Cut(seg, ";"); hasParam && (dot == "." || dot == "..") {
			return "", pathError(ProblemDotParameter, -1)
		}
		switch seg {
		case ".":
			trailingSlash = last
		case "..":
			if skippedEmpty {
				return "", pathError(ProblemAmbiguousDots, -1)
			}
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailingSlash = last
		case "":
			switch {
			case last:
				trailingSlash = true
			case o.MergeSlashes:
				skippedEmpty = true
			default:
				out = append(out, "")
			}
		default:
			out = append(out, seg)
			skippedEmpty = false
		}
	}
	var b strings.Builder
	b.Grow(len(buf))
	for _, seg := range out {
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if trailingSlash || len(out) == 0 {
		b.WriteByte('/')
	}
	return b.String(), nil
}

// Target splits an origin-form request target at its first '?' and returns
// the canonical path and the raw query (without '?'), or an *Error. The
// query stays as sent (the backend parses it), but it must be something a
// proxy forwards unchanged: no space, control character, '#' or invalid
// UTF-8.
func (o Options) Target(target string) (path, query string, err error) {
	path, query, _ = strings.Cut(target, "?")
	if err := Query(query); err != nil {
		return "", "", err
	}
	path, err = o.Path(path)
	return path, query, err
}

// Query checks a raw query string (without '?').
func Query(q string) error {
	if len(q) > MaxLength {
		return &Error{Problem: ProblemTooLong, Part: "query", Offset: -1}
	}
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c <= ' ' || c == 0x7f:
			return &Error{Problem: ProblemControl, Part: "query", Offset: i}
		case c == '#':
			return &Error{Problem: ProblemFragment, Part: "query", Offset: i}
		}
	}
	if !utf8.ValidString(q) {
		return &Error{Problem: ProblemInvalidUTF8, Part: "query", Offset: -1}
	}
	return nil
}
