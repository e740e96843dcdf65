package config

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
)

// Overload bounds the checks ccauthz decides at once, so that a burst
// beyond capacity is shed with an immediate 503 instead of queueing until
// every caller times out (docs/configuration.md "Overload").
type Overload struct {
	// MaxInFlight is the server-wide limit on checks being decided at once
	// over every protocol (gRPC and the HTTP checks); a check over it is
	// answered at once with 503 overloaded. 0 is the default, 32 ×
	// GOMAXPROCS; -1 turns the limit off.
	MaxInFlight int `yaml:"max_in_flight"`
	// MinDeadline: a gRPC check whose caller deadline (grpc-timeout, Envoy's
	// ext_authz timeout) is closer than this when it starts is answered
	// 503 deadline_exceeded without evaluation. 0 is the default, 1ms; a
	// deadline already passed is always dropped.
	MinDeadline time.Duration `yaml:"min_deadline"`
	// MaxQueueWait: a gRPC check that waited longer than this inside the
	// gRPC transport (its HEADERS frame read, its handler not yet started)
	// is answered 503 overloaded without evaluation (unless it carries over
	// 64 KiB of headers and body: its wait was its upload), and the server
	// counts as congested for as long again. 0 (the default) turns it off.
	MaxQueueWait time.Duration `yaml:"max_queue_wait"`
	// RefuseStreams: while max_in_flight checks are in flight, or while
	// congested (above), the gRPC transport refuses new Check streams with
	// RESOURCE_EXHAUSTED before decoding them, the cheapest way to shed.
	// Envoy turns that error into status_on_error (503) only with
	// failure_mode_allow: false, as every Envoy config we ship sets; with
	// failure_mode_allow: true a refused check would be let through, hence
	// off by default.
	RefuseStreams bool `yaml:"refuse_streams"`
}

var overloadFields = []string{"max_in_flight", "min_deadline", "max_queue_wait", "refuse_streams"}

func decodeOverload(r catalog.NodeReader, n *yaml.Node, o *Overload) {
	f := r.Fields(n, "overload", overloadFields, nil)
	if f == nil {
		return
	}
	if v, ok := r.Int(f["max_in_flight"], "max_in_flight"); ok {
		if v < -1 {
			r.Errorf(f["max_in_flight"], "field \"max_in_flight\" must be -1 (off), 0 (default) or a positive limit, got %d", v)
		}
		o.MaxInFlight = v
	}
	if v, ok := r.Duration(f["min_deadline"], "min_deadline"); ok {
		if v < 0 || v > time.Second {
			r.Errorf(f["min_deadline"], "field \"min_deadline\" must be between 0s and 1s, got %s", v)
		}
		o.MinDeadline = v
	}
	if v, ok := r.Duration(f["max_queue_wait"], "max_queue_wait"); ok {
		if v < 0 || v > time.Second {
			r.Errorf(f["max_queue_wait"], "field \"max_queue_wait\" must be between 0s (off) and 1s, got %s", v)
		}
		o.MaxQueueWait = v
	}
	if v, ok := r.Bool(f["refuse_streams"], "refuse_streams"); ok {
		o.RefuseStreams = v
	}
}
