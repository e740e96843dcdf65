package ratelimit

import (
	"strconv"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

const ns = "envoy.filters.http.ext_authz"

func mdAction(descKey string, path []string, def string, skip bool) *routev3.RateLimit_Action {
	k := &metadatav3.MetadataKey{Key: ns}
	for _, p := range path {
		k.Path = append(k.Path, &metadatav3.MetadataKey_PathSegment{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: p}})
	}
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
		DescriptorKey: descKey, MetadataKey: k, DefaultValue: def, SkipIfAbsent: skip,
		Source: routev3.RateLimit_Action_MetaData_DYNAMIC,
	}}}
}

func generic(k, v string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: k, DescriptorValue: v}}}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func render(ds []*rlcommonv3.RateLimitDescriptor) string {
	var parts []string
	for _, d := range ds {
		var es []string
		for _, e := range d.GetEntries() {
			es = append(es, e.GetKey()+"="+e.GetValue())
		}
		s := strings.Join(es, ",")
		if d.GetLimit() != nil {
			s += " limit=" + d.GetLimit().GetUnit().String() + ":" + strconv.FormatUint(uint64(d.GetLimit().GetRequestsPerUnit()), 10)
		}
		parts = append(parts, "["+s+"]")
	}
	return strings.Join(parts, " ")
}

func TestEnvoyDescriptors(t *testing.T) {
	md := map[string]*structpb.Struct{ns: mustStruct(t, map[string]any{
		"backend":     "ai_gateway",
		"instance_id": "abc",
		"seat_count":  42.0, // a number: Envoy's metadata action never matches it
		"empty":       "",
		"nested":      map[string]any{"unit_primitive": "duo_chat"},
		"limit":       map[string]any{"requests_per_unit": 7.0, "unit": "minute"},
		"bad_limit":   map[string]any{"requests_per_unit": "7", "unit": "minute"},
	})}
	rc := RequestContext{DynamicMetadata: md, Headers: map[string]string{"x-gitlab-realm": "saas"}}
	cases := []struct {
		name   string
		limits []*routev3.RateLimit
		want   string
	}{
		{"all entries present", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			mdAction("backend", []string{"backend"}, "", false),
			mdAction("instance_id", []string{"instance_id"}, "", false),
		}}}, "[backend=ai_gateway,instance_id=abc]"},
		{"nested path", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			mdAction("up", []string{"nested", "unit_primitive"}, "", false),
		}}}, "[up=duo_chat]"},
		{"one missing entry drops the whole descriptor", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			mdAction("backend", []string{"backend"}, "", false),
			mdAction("user", []string{"global_user_id"}, "", false),
		}}}, ""},
		{"a non-string value counts as missing", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			mdAction("seats", []string{"seat_count"}, "", false),
		}}}, ""},
		{"an empty string counts as missing", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			mdAction("e", []string{"empty"}, "", false),
		}}}, ""},
		{"default_value fills a missing entry", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			mdAction("user", []string{"global_user_id"}, "anonymous", false),
		}}}, "[user=anonymous]"},
		{"skip_if_absent omits the entry but keeps the descriptor", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			mdAction("backend", []string{"backend"}, "", false),
			mdAction("user", []string{"global_user_id"}, "", true),
		}}}, "[backend=ai_gateway]"},
		{"each RateLimit is its own descriptor", []*routev3.RateLimit{
			{Actions: []*routev3.RateLimit_Action{mdAction("user", []string{"global_user_id"}, "", false)}},
			{Actions: []*routev3.RateLimit_Action{generic("scope", "all"), mdAction("backend", []string{"backend"}, "", false)}},
		}, "[scope=all,backend=ai_gateway]"},
		{"request header action", []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: "X-Gitlab-Realm", DescriptorKey: "realm"}}},
		}}}, "[realm=saas]"},
		{"limit override from metadata", []*routev3.RateLimit{{
			Actions: []*routev3.RateLimit_Action{mdAction("backend", []string{"backend"}, "", false)},
			Limit: &routev3.RateLimit_Override{OverrideSpecifier: &routev3.RateLimit_Override_DynamicMetadata_{DynamicMetadata: &routev3.RateLimit_Override_DynamicMetadata{
				MetadataKey: &metadatav3.MetadataKey{Key: ns, Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "limit"}}}},
			}}},
		}}, "[backend=ai_gateway limit=MINUTE:7]"},
		{"a malformed override is ignored", []*routev3.RateLimit{{
			Actions: []*routev3.RateLimit_Action{mdAction("backend", []string{"backend"}, "", false)},
			Limit: &routev3.RateLimit_Override{OverrideSpecifier: &routev3.RateLimit_Override_DynamicMetadata_{DynamicMetadata: &routev3.RateLimit_Override_DynamicMetadata{
				MetadataKey: &metadatav3.MetadataKey{Key: ns, Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "bad_limit"}}}},
			}}},
		}}, "[backend=ai_gateway]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := EnvoyDescriptors(c.limits, rc)
			if err != nil {
				t.Fatal(err)
			}
			if r := render(got); r != c.want {
				t.Fatalf("got %q, want %q", r, c.want)
			}
		})
	}
}

func TestEnvoyDescriptorsUnsupportedAction(t *testing.T) {
	_, err := EnvoyDescriptors([]*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
		{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}},
	}}}, RequestContext{})
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("want an unsupported-action error, got %v", err)
	}
}

func TestLimitOverrideUnits(t *testing.T) {
	for unit, want := range map[string]typev3.RateLimitUnit{"second": typev3.RateLimitUnit_SECOND, "HOUR": typev3.RateLimitUnit_HOUR, "Day": typev3.RateLimitUnit_DAY} {
		v := structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"requests_per_unit": structpb.NewNumberValue(3), "unit": structpb.NewStringValue(unit)}})
		if got := limitOverride(v); got.GetUnit() != want || got.GetRequestsPerUnit() != 3 {
			t.Errorf("%s: got %v", unit, got)
		}
	}
	for _, bad := range []map[string]*structpb.Value{
		{"requests_per_unit": structpb.NewNumberValue(1.5), "unit": structpb.NewStringValue("minute")},
		{"requests_per_unit": structpb.NewNumberValue(-1), "unit": structpb.NewStringValue("minute")},
		{"requests_per_unit": structpb.NewNumberValue(1), "unit": structpb.NewStringValue("fortnight")},
		{"requests_per_unit": structpb.NewNumberValue(1)},
	} {
		if got := limitOverride(structpb.NewStructValue(&structpb.Struct{Fields: bad})); got != nil {
			t.Errorf("%v: want no override, got %v", bad, got)
		}
	}
}
