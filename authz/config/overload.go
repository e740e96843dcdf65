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
}

var overloadFields = []string{"max_in_flight", "min_deadline"}

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
}
