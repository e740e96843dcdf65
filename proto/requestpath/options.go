package requestpath

import "fmt"

// EscapedSlashes is what happens to an encoded slash or backslash (%2F,
// %5C) in a path: the choice Envoy's path_with_escaped_slashes_action offers.
type EscapedSlashes string

const (
	// EscapedSlashesReject rejects the path (Envoy REJECT_REQUEST). The
	// default, and what deploy/envoy*.yaml set.
	EscapedSlashesReject EscapedSlashes = "reject"
	// EscapedSlashesKeep keeps %2F and %5C as data inside a segment (Envoy
	// KEEP_UNCHANGED): the backend must not decode them into separators.
	EscapedSlashesKeep EscapedSlashes = "keep"
	// EscapedSlashesUnescape turns %2F into a separator before dot
	// segments are removed (Envoy UNESCAPE_AND_FORWARD and
	// UNESCAPE_AND_REDIRECT); %5C is still rejected, as a raw backslash is.
	EscapedSlashesUnescape EscapedSlashes = "unescape"
)

// MaxLength bounds a path in bytes (without its query). nginx's default
// large_client_header_buffers (8k) refuses longer request lines, and no
// Cloud Connector route comes near it.
const MaxLength = 8192

// Options are the canonicalisation choices a gateway makes; only those
// Envoy's HTTP connection manager also offers.
type Options struct {
	// MergeSlashes collapses runs of slashes ("//") into one (Envoy
	// merge_slashes, nginx merge_slashes). Default true.
	MergeSlashes bool
	// EscapedSlashes is the action on %2F and %5C. Default reject.
	EscapedSlashes EscapedSlashes
}

// Default returns the options the shipped gateway configs match.
func Default() Options {
	return Options{MergeSlashes: true, EscapedSlashes: EscapedSlashesReject}
}

// Validate reports an unknown EscapedSlashes action ("" is the default).
func (o Options) Validate() error {
	switch o.EscapedSlashes {
	case "", EscapedSlashesReject, EscapedSlashesKeep, EscapedSlashesUnescape:
		return nil
	}
	return fmt.Errorf("escaped slash action %q is not one of reject, keep, unescape", o.EscapedSlashes)
}
