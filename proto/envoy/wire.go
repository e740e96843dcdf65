package envoy

import (
	"math"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ccauthz/ccauthz/policy"
)

// Field numbers of the messages AppendWire writes (envoy/service/auth/v3
// external_auth.proto, envoy/config/core/v3 base.proto, envoy/type/v3
// http_status.proto, google/rpc/status.proto, google/protobuf/struct.proto).
// TestWireMatchesResponse decodes AppendWire's bytes with go-control-plane's
// types and compares them with Response's messages, so a wrong number here
// fails there.
const (
	fCheckStatus   protowire.Number = 1 // CheckResponse.status (google.rpc.Status)
	fCheckDenied   protowire.Number = 2 // CheckResponse.denied_response
	fCheckOK       protowire.Number = 3 // CheckResponse.ok_response
	fCheckMetadata protowire.Number = 4 // CheckResponse.dynamic_metadata (Struct)

	fRPCCode    protowire.Number = 1 // google.rpc.Status.code
	fRPCMessage protowire.Number = 2 // google.rpc.Status.message

	fDeniedStatus  protowire.Number = 1 // DeniedHttpResponse.status (HttpStatus)
	fDeniedHeaders protowire.Number = 2 // DeniedHttpResponse.headers
	fDeniedBody    protowire.Number = 3 // DeniedHttpResponse.body
	fHTTPCode      protowire.Number = 1 // HttpStatus.code

	fOKHeaders  protowire.Number = 2 // OkHttpResponse.headers
	fOKToRemove protowire.Number = 5 // OkHttpResponse.headers_to_remove

	fOptionHeader protowire.Number = 1 // HeaderValueOption.header
	fOptionAction protowire.Number = 3 // HeaderValueOption.append_action
	fHeaderKey    protowire.Number = 1 // HeaderValue.key
	fHeaderValue  protowire.Number = 2 // HeaderValue.value

	fStructFields protowire.Number = 1 // Struct.fields (map entries)
	fEntryKey     protowire.Number = 1 // map entry key
	fEntryValue   protowire.Number = 2 // map entry value (Value)
	fValueNumber  protowire.Number = 2 // Value.number_value
	fValueString  protowire.Number = 3 // Value.string_value
	fValueStruct  protowire.Number = 5 // Value.struct_value
)

// WireSizeHint is a buffer capacity that holds a typical CheckResponse
// (an allow with the ccauthz headers and full metadata is about 700 bytes).
const WireSizeHint = 1024

// AppendWire appends the protobuf encoding of Response(o) to b, without
// building the messages: it is the check's hot path (the gRPC codec sends
// these bytes as they are), where building the CheckResponse, its
// dynamic-metadata Struct (a map of about 17 entries) and their headers,
// then walking them again to marshal, was a fifth of a cached check's CPU
// and most of its allocations. Decoded, the bytes are Response(o) exactly
// (TestWireMatchesResponse): the same fields, the same repeated order (headers
// sorted by name), the same UTF-8 repair. Only the order of the metadata's
// map entries differs, which a map does not have.
func (r *Responder) AppendWire(b []byte, o *Outcome) []byte {
	d := o.Decision
	var at int
	if o.Enforced() {
		// Status OK: an empty google.rpc.Status, present so Envoy reads OK.
		b = protowire.AppendTag(b, fCheckStatus, protowire.BytesType)
		b = protowire.AppendVarint(b, 0)
		b, at = beginMessage(b, fCheckOK)
		if d.Allow && len(d.Headers) > 0 {
			b = appendHeaderOptions(b, fOKHeaders, d.Headers, nil)
		}
		for _, h := range d.HeadersToRemove {
			b = protowire.AppendTag(b, fOKToRemove, protowire.BytesType)
			b = protowire.AppendString(b, validUTF8(h))
		}
		b = endMessage(b, at)
	} else {
		status := d.Status
		if status < 400 || status > 599 {
			status = 403 // as Response: a deny without a usable status stays closed
		}
		b, at = beginMessage(b, fCheckStatus)
		b = protowire.AppendTag(b, fRPCCode, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(rpcCode(status)))
		if msg := validUTF8(string(d.Reason)); msg != "" {
			b = protowire.AppendTag(b, fRPCMessage, protowire.BytesType)
			b = protowire.AppendString(b, msg)
		}
		b = endMessage(b, at)
		b, at = beginMessage(b, fCheckDenied)
		b = protowire.AppendTag(b, fDeniedStatus, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(1+protowire.SizeVarint(uint64(status))))
		b = protowire.AppendTag(b, fHTTPCode, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(status))
		if o.Backend != nil && o.Backend.GRPC {
			h, body := GRPCDenial(d, status)
			b = appendHeaderOptions(b, fDeniedHeaders, h, nil)
			if body != "" {
				b = protowire.AppendTag(b, fDeniedBody, protowire.BytesType)
				b = protowire.AppendString(b, body)
			}
		} else {
			b = appendHeaderOptions(b, fDeniedHeaders, d.ResponseHeaders, r.contentType)
			tag := len(b)
			var bodyAt int
			b, bodyAt = beginMessage(b, fDeniedBody)
			b = AppendJSON(b, d.Body)
			if len(b) == bodyAt {
				b = b[:tag] // an empty body is omitted, as proto3 does
			} else {
				b = endMessage(b, bodyAt)
			}
		}
		b = endMessage(b, at)
	}
	return r.appendMetadata(b, o)
}

// appendMetadata appends CheckResponse.dynamic_metadata: the entries
// metadata builds, in the order it assigns them (so a repeated key, were
// there one, would win on decoding as it wins in the map).
func (r *Responder) appendMetadata(b []byte, o *Outcome) []byte {
	d := o.Decision
	b, at := beginMessage(b, fCheckMetadata)
	b = appendStringEntry(b, MetaDecisionID, validUTF8(o.DecisionID))
	if be := o.Backend; be != nil {
		b = appendStringEntry(b, MetaBackend, be.name.GetStringValue())
		b = appendStringEntry(b, MetaPolicyRevision, be.revision.GetStringValue())
	} else {
		b = appendStringEntry(b, MetaBackend, "")
		b = appendStringEntry(b, MetaPolicyRevision, "")
	}
	reason := validUTF8(string(d.Reason))
	b = appendStringEntry(b, MetaReason, reason)
	b = appendStringEntry(b, MetaRoute, validUTF8(d.Route))
	status := d.Status
	if d.Allow && status == 0 {
		status = 200
	}
	var num [24]byte
	b = appendStringEntry(b, MetaStatus, string(strconv.AppendInt(num[:0], int64(status), 10)))
	switch len(d.UnitPrimitives) {
	case 0:
		b = appendStringEntry(b, MetaUnitPrimitive, "")
	case 1:
		b = appendStringEntry(b, MetaUnitPrimitive, validUTF8(d.UnitPrimitives[0]))
	default:
		b = appendStringEntry(b, MetaUnitPrimitive, validUTF8(strings.Join(d.UnitPrimitives, ",")))
	}
	if o.DryRun {
		b = appendStringEntry(b, MetaDryRun, "true")
		if !d.Allow {
			b = appendStringEntry(b, MetaWouldDeny, reason)
		}
	} else {
		b = appendStringEntry(b, MetaDryRun, "false")
	}
	for k, v := range d.RateLimit.Entries {
		mk, ok := r.rateLimitKeys[k]
		if !ok {
			mk = MetaRateLimitPrefix + validUTF8(k)
		}
		b = appendStringEntry(b, mk, validUTF8(v))
	}
	if o.RateLimited != "" {
		b = appendStringEntry(b, MetaRateLimited, validUTF8(o.RateLimited))
	}
	if l := d.RateLimit.Limit; l != nil {
		b = appendOverrideEntry(b, *l)
	}
	return endMessage(b, at)
}

// appendStringEntry appends one Struct.fields entry whose value is a
// string Value. The sizes are computed, not measured, so nothing moves.
func appendStringEntry(b []byte, key, val string) []byte {
	value := 1 + protowire.SizeBytes(len(val)) // Value{string_value}: always present (a oneof)
	entry := 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(value)
	b = protowire.AppendTag(b, fStructFields, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entry))
	b = protowire.AppendTag(b, fEntryKey, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, fEntryValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(value))
	b = protowire.AppendTag(b, fValueString, protowire.BytesType)
	return protowire.AppendString(b, val)
}

// appendOverrideEntry appends the ratelimit_override entry: a struct Value
// {requests_per_unit (number), unit (string)}, as Responder.override builds.
func appendOverrideEntry(b []byte, l policy.LimitOverride) []byte {
	b = protowire.AppendTag(b, fStructFields, protowire.BytesType)
	b, entry := beginMessage(b, 0)
	b = protowire.AppendTag(b, fEntryKey, protowire.BytesType)
	b = protowire.AppendString(b, MetaRateLimitOverride)
	b = protowire.AppendTag(b, fEntryValue, protowire.BytesType)
	b, value := beginMessage(b, 0)
	b = protowire.AppendTag(b, fValueStruct, protowire.BytesType)
	b, fields := beginMessage(b, 0)
	// requests_per_unit: a number Value (fixed64 double).
	const numberValue = 1 + 8
	b = protowire.AppendTag(b, fStructFields, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(1+protowire.SizeBytes(len("requests_per_unit"))+1+protowire.SizeBytes(numberValue)))
	b = protowire.AppendTag(b, fEntryKey, protowire.BytesType)
	b = protowire.AppendString(b, "requests_per_unit")
	b = protowire.AppendTag(b, fEntryValue, protowire.BytesType)
	b = protowire.AppendVarint(b, numberValue)
	b = protowire.AppendTag(b, fValueNumber, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(float64(l.RequestsPerUnit)))
	b = appendStringEntry(b, "unit", validUTF8(l.Unit))
	b = endMessage(b, fields)
	b = endMessage(b, value)
	return endMessage(b, entry)
}

// appendHeaderOptions appends one OVERWRITE_IF_EXISTS_OR_ADD
// HeaderValueOption a header, sorted by name, then extra unless h sets the
// same header: headerOptions' list, field by field.
func appendHeaderOptions(b []byte, field protowire.Number, h map[string]string, extra *corev3.HeaderValueOption) []byte {
	type kv struct{ k, v string }
	var stack [16]kv
	hs := stack[:0]
	for k, v := range h {
		hs = append(hs, kv{validUTF8(k), validUTF8(v)})
	}
	if len(hs) > 1 {
		slices.SortFunc(hs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	}
	for _, x := range hs {
		b = appendHeaderOption(b, field, x.k, x.v)
	}
	if extra != nil {
		if _, set := h[extra.Header.Key]; !set {
			b = appendHeaderOption(b, field, extra.Header.Key, extra.Header.Value)
		}
	}
	return b
}

func appendHeaderOption(b []byte, field protowire.Number, k, v string) []byte {
	hv := 0
	if k != "" {
		hv += 1 + protowire.SizeBytes(len(k))
	}
	if v != "" {
		hv += 1 + protowire.SizeBytes(len(v))
	}
	const action = uint64(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
	opt := 1 + protowire.SizeBytes(hv) + 1 + protowire.SizeVarint(action)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(opt))
	b = protowire.AppendTag(b, fOptionHeader, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(hv))
	if k != "" {
		b = protowire.AppendTag(b, fHeaderKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
	}
	if v != "" {
		b = protowire.AppendTag(b, fHeaderValue, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	b = protowire.AppendTag(b, fOptionAction, protowire.VarintType)
	return protowire.AppendVarint(b, action)
}

// beginMessage appends the tag of a length-delimited field (none when
// field is 0: the caller wrote it) and returns where its content starts;
// endMessage then puts the content's length in front of it. The content is
// moved by the length's size (1 to 3 bytes here), which is cheaper than
// computing every nested size twice.
func beginMessage(b []byte, field protowire.Number) ([]byte, int) {
	if field != 0 {
		b = protowire.AppendTag(b, field, protowire.BytesType)
	}
	return b, len(b)
}

func endMessage(b []byte, at int) []byte {
	n := len(b) - at
	sz := protowire.SizeVarint(uint64(n))
	for range sz {
		b = append(b, 0)
	}
	copy(b[at+sz:], b[at:at+n])
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}
