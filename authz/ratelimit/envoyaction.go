package ratelimit

import (
	"fmt"
	"math"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// RequestContext is what Envoy's rate-limit actions may read about a request:
// its dynamic metadata by filter namespace (ccauthz's lands under
// envoy.filters.http.ext_authz) and its headers (lower-case names).
type RequestContext struct {
	DynamicMetadata map[string]*structpb.Struct
	Headers         map[string]string
}

// EnvoyDescriptors builds the rate-limit descriptors Envoy's rate-limit filter
// would send for a route's rate_limits, following Envoy's documented rules:
//   - the actions of one RateLimit are applied in order, each appending one
//     entry to that RateLimit's descriptor;
//   - a `metadata` action matches only a **string** value at metadata_key;
//     with no match it uses default_value, else skips the entry when
//     skip_if_absent is set, else no descriptor is generated for that
//     RateLimit at all;
//   - a RateLimit whose actions appended nothing generates no descriptor;
//   - `limit.dynamic_metadata` attaches the {requests_per_unit, unit} struct
//     found at its metadata_key as the descriptor's limit override.
//
// It supports the actions ccauthz's deployments use (metadata, generic_key,
// request_headers) and returns an error for any other, so a test never
// silently passes on a configuration it cannot judge.
func EnvoyDescriptors(limits []*routev3.RateLimit, rc RequestContext) ([]*rlcommonv3.RateLimitDescriptor, error) {
	var out []*rlcommonv3.RateLimitDescriptor
	for i, rl := range limits {
		d := &rlcommonv3.RateLimitDescriptor{}
		complete := true
		for j, a := range rl.GetActions() {
			entry, ok, err := applyAction(a, rc)
			if err != nil {
				return nil, fmt.Errorf("rate_limits[%d].actions[%d]: %w", i, j, err)
			}
			if !ok {
				complete = false
				break
			}
			if entry != nil {
				d.Entries = append(d.Entries, entry)
			}
		}
		if !complete || len(d.Entries) == 0 {
			continue
		}
		if dm := rl.GetLimit().GetDynamicMetadata(); dm != nil {
			d.Limit = limitOverride(lookup(rc.DynamicMetadata, dm.GetMetadataKey()))
		}
		out = append(out, d)
	}
	return out, nil
}

// applyAction returns the entry the action appends (nil to skip it), or ok
// false when the whole descriptor must be dropped.
func applyAction(a *routev3.RateLimit_Action, rc RequestContext) (*rlcommonv3.RateLimitDescriptor_Entry, bool, error) {
	switch s := a.GetActionSpecifier().(type) {
	case *routev3.RateLimit_Action_GenericKey_:
		key := s.GenericKey.GetDescriptorKey()
		if key == "" {
			key = "generic_key"
		}
		return &rlcommonv3.RateLimitDescriptor_Entry{Key: key, Value: s.GenericKey.GetDescriptorValue()}, true, nil
	case *routev3.RateLimit_Action_Metadata:
		m := s.Metadata
		if m.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
			return nil, false, fmt.Errorf("metadata action with source %v is not supported (only DYNAMIC)", m.GetSource())
		}
		v := lookup(rc.DynamicMetadata, m.GetMetadataKey())
		if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok && sv.StringValue != "" {
			return &rlcommonv3.RateLimitDescriptor_Entry{Key: m.GetDescriptorKey(), Value: sv.StringValue}, true, nil
		}
		return absent(m.GetDescriptorKey(), m.GetDefaultValue(), m.GetSkipIfAbsent())
	case *routev3.RateLimit_Action_RequestHeaders_:
		h := s.RequestHeaders
		if v, ok := rc.Headers[strings.ToLower(h.GetHeaderName())]; ok {
			return &rlcommonv3.RateLimitDescriptor_Entry{Key: h.GetDescriptorKey(), Value: v}, true, nil
		}
		return absent(h.GetDescriptorKey(), "", h.GetSkipIfAbsent())
	default:
		return nil, false, fmt.Errorf("action %T is not supported by this emulation", s)
	}
}

func absent(key, def string, skip bool) (*rlcommonv3.RateLimitDescriptor_Entry, bool, error) {
	switch {
	case def != "":
		return &rlcommonv3.RateLimitDescriptor_Entry{Key: key, Value: def}, true, nil
	case skip:
		return nil, true, nil
	default:
		return nil, false, nil
	}
}

// lookup finds the value at key.key / key.path in the dynamic metadata.
func lookup(md map[string]*structpb.Struct, key *metadatav3.MetadataKey) *structpb.Value {
	s := md[key.GetKey()]
	if s == nil {
		return nil
	}
	var v *structpb.Value
	for i, seg := range key.GetPath() {
		if s == nil {
			return nil
		}
		v = s.GetFields()[seg.GetKey()]
		if v == nil {
			return nil
		}
		if i < len(key.GetPath())-1 {
			s = v.GetStructValue()
		}
	}
	return v
}

// limitOverride reads {requests_per_unit, unit} as Envoy's dynamic-metadata
// override does: requests_per_unit a number, unit a RateLimitUnit name (any
// case). Anything else yields no override.
func limitOverride(v *structpb.Value) *rlcommonv3.RateLimitDescriptor_RateLimitOverride {
	f := v.GetStructValue().GetFields()
	rpu, ok := f["requests_per_unit"].GetKind().(*structpb.Value_NumberValue)
	if !ok || rpu.NumberValue < 0 || rpu.NumberValue > math.MaxUint32 || rpu.NumberValue != math.Trunc(rpu.NumberValue) {
		return nil
	}
	unit, ok := typev3.RateLimitUnit_value[strings.ToUpper(f["unit"].GetStringValue())]
	if !ok || unit == int32(typev3.RateLimitUnit_UNKNOWN) {
		return nil
	}
	return &rlcommonv3.RateLimitDescriptor_RateLimitOverride{
		RequestsPerUnit: uint32(rpu.NumberValue),
		Unit:            typev3.RateLimitUnit(unit),
	}
}
