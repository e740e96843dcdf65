package requestpath

import "strconv"

// Problem names why a request target was rejected. The set is closed; each
// has a fixed message (docs/request-path.md lists them).
type Problem string

// Problems.
const (
	ProblemNotAbsolute    Problem = "not_absolute"
	ProblemTooLong        Problem = "too_long"
	ProblemControl        Problem = "control_character"
	ProblemFragment       Problem = "fragment"
	ProblemBackslash      Problem = "backslash"
	ProblemEncodedSlash   Problem = "encoded_slash"
	ProblemBadEscape      Problem = "bad_escape"
	ProblemOverlongUTF8   Problem = "overlong_utf8"
	ProblemInvalidUTF8    Problem = "invalid_utf8"
	ProblemAmbiguousDots  Problem = "ambiguous_dot_segment"
	ProblemDotParameter   Problem = "dot_segment_parameter"
	ProblemQueryDelimiter Problem = "query_delimiter"
)

var messages = map[Problem]string{
	ProblemNotAbsolute:    "does not start with /",
	ProblemTooLong:        "is longer than " + strconv.Itoa(MaxLength) + " bytes",
	ProblemControl:        "has a space, NUL or control character (raw or percent-encoded)",
	ProblemFragment:       "has a # (a fragment is never sent to a server; parsers disagree on where it starts)",
	ProblemBackslash:      "has a backslash, which some proxies treat as a slash and others do not",
	ProblemEncodedSlash:   "has an encoded slash or backslash (%2F or %5C), which proxies and backends decode differently",
	ProblemBadEscape:      "has a % that is not followed by two hex digits",
	ProblemOverlongUTF8:   "has an overlong UTF-8 sequence",
	ProblemInvalidUTF8:    "is not valid UTF-8",
	ProblemAmbiguousDots:  "has a .. segment after a double slash; proxies disagree on which segment it removes",
	ProblemDotParameter:   "has a dot segment with a ;parameter (/..;/), which some servers treat as ..",
	ProblemQueryDelimiter: "has a ? (split the query off first)",
}

// Error is a rejected request target. Its message names the part (path or
// query), the problem and the byte offset, never the input itself, so it is
// safe to send to the client and to log.
type Error struct {
	Problem Problem
	// Part is "path" or "query".
	Part string
	// Offset is the byte offset of the problem in the part, -1 when the
	// problem is the whole part.
	Offset int
}

func (e *Error) Error() string {
	msg := "the request " + e.Part + " " + messages[e.Problem]
	if e.Offset >= 0 {
		msg += " (at byte " + strconv.Itoa(e.Offset) + ")"
	}
	return msg
}

func pathError(p Problem, offset int) error { return &Error{Problem: p, Part: "path", Offset: offset} }
