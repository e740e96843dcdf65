package identity

import (
	"encoding/json"
	"testing"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

var seats = manifest.SeatBuckets{SmallMax: 100, MediumMax: 1000}

// TestResolve walks every row of the identity table in docs/policy.md.
func TestResolve(t *testing.T) {
	instClaims := map[string]any{"sub": "inst-sub", "gitlab_instance_id": "inst-claim", "gitlab_realm": "self-managed", "duo_seat_count": float64(50)}
	allHeaders := map[string]string{
		HeaderInstanceID: "inst-header", HeaderGlobalUserID: "user-header",
		HeaderRealm: "saas", HeaderSeatCount: "999999",
	}
	v := func(val string, from Source, claim string, ignored bool) Value {
		return Value{Value: val, From: from, Claim: claim, HeaderIgnored: ignored}
	}
	for _, tc := range []struct {
		name string
		req  Request
		want Identity
	}{
		{"claims win over every header (a header never raises the seat bucket)",
			Request{TokenValid: true, Kind: "instance", Claims: instClaims, Headers: allHeaders},
			Identity{
				InstanceID:   v("inst-claim", FromClaim, "gitlab_instance_id", true),
				GlobalUserID: v("user-header", FromHeader, "", false),
				Realm:        v("self-managed", FromClaim, "gitlab_realm", true),
				SeatBucket:   v("small", FromClaim, "duo_seat_count", true),
				Subject:      "inst-sub", ClaimRealm: "self-managed",
			}},
		{"instance token without gitlab_instance_id: sub is the instance id",
			Request{TokenValid: true, Kind: "instance", Claims: map[string]any{"sub": "inst-sub"}, Headers: map[string]string{HeaderInstanceID: "inst-sub"}},
			Identity{
				InstanceID:   v("inst-sub", FromClaim, "sub", false),
				GlobalUserID: v(Unknown, FromDefault, "", false),
				Realm:        v(Unknown, FromDefault, "", false),
				SeatBucket:   v("any", FromDefault, "", false),
				Subject:      "inst-sub",
			}},
		{"user token: sub is the global user id, never the instance id",
			Request{TokenValid: true, Kind: "user", Claims: map[string]any{"sub": "user-sub"}, Headers: allHeaders},
			Identity{
				InstanceID:   v("inst-header", FromHeader, "", false),
				GlobalUserID: v("user-sub", FromClaim, "sub", true),
				Realm:        v("saas", FromHeader, "", false),
				SeatBucket:   v("large", FromHeader, "", false),
				Subject:      "user-sub",
			}},
		{"claims absent: headers",
			Request{TokenValid: true, Kind: "instance", Claims: map[string]any{}, Headers: map[string]string{HeaderInstanceID: "i", HeaderGlobalUserID: "u", HeaderRealm: "saas", HeaderSeatCount: "101"}},
			Identity{
				InstanceID: v("i", FromHeader, "", false), GlobalUserID: v("u", FromHeader, "", false),
				Realm: v("saas", FromHeader, "", false), SeatBucket: v("medium", FromHeader, "", false),
			}},
		{"empty and non-string claims do not count",
			Request{TokenValid: true, Kind: "instance", Claims: map[string]any{"sub": "", "gitlab_instance_id": float64(7), "gitlab_realm": nil, "duo_seat_count": ""}, Headers: map[string]string{HeaderInstanceID: "i", HeaderSeatCount: "1"}},
			Identity{
				InstanceID: v("i", FromHeader, "", false), GlobalUserID: v(Unknown, FromDefault, "", false),
				Realm: v(Unknown, FromDefault, "", false), SeatBucket: v("small", FromHeader, "", false),
			}},
		{"a non-string sub or gitlab_realm is no subject or claim realm",
			Request{TokenValid: true, Kind: "instance", Claims: map[string]any{"sub": float64(3), "gitlab_realm": []any{"saas"}}, Headers: map[string]string{HeaderRealm: "saas"}},
			Identity{
				InstanceID: v(Unknown, FromDefault, "", false), GlobalUserID: v(Unknown, FromDefault, "", false),
				Realm: v("saas", FromHeader, "", false), SeatBucket: v("any", FromDefault, "", false),
			}},
		{"claims of a token that did not verify are never used",
			Request{TokenValid: false, Kind: "instance", Claims: instClaims, Headers: map[string]string{HeaderRealm: "saas"}},
			Identity{
				InstanceID: v(Unknown, FromDefault, "", false), GlobalUserID: v(Unknown, FromDefault, "", false),
				Realm: v("saas", FromHeader, "", false), SeatBucket: v("any", FromDefault, "", false),
			}},
		{"empty headers are unknown",
			Request{TokenValid: true, Kind: "instance", Headers: map[string]string{HeaderInstanceID: "", HeaderGlobalUserID: "", HeaderRealm: "", HeaderSeatCount: ""}},
			Identity{
				InstanceID: v(Unknown, FromDefault, "", false), GlobalUserID: v(Unknown, FromDefault, "", false),
				Realm: v(Unknown, FromDefault, "", false), SeatBucket: v("any", FromDefault, "", false),
			}},
		{"a seat-count claim that is not a positive integer is any, and the header cannot replace it",
			Request{TokenValid: true, Kind: "instance", Claims: map[string]any{"duo_seat_count": float64(0)}, Headers: map[string]string{HeaderSeatCount: "999999"}},
			Identity{
				InstanceID: v(Unknown, FromDefault, "", false), GlobalUserID: v(Unknown, FromDefault, "", false),
				Realm: v(Unknown, FromDefault, "", false), SeatBucket: v("any", FromClaim, "duo_seat_count", true),
			}},
		{"claim equal to the header: nothing ignored",
			Request{TokenValid: true, Kind: "instance", Claims: map[string]any{"duo_seat_count": json.Number("1001"), "gitlab_realm": "saas"}, Headers: map[string]string{HeaderSeatCount: "1001", HeaderRealm: "saas"}},
			Identity{
				InstanceID: v(Unknown, FromDefault, "", false), GlobalUserID: v(Unknown, FromDefault, "", false),
				Realm: v("saas", FromClaim, "gitlab_realm", false), SeatBucket: v("large", FromClaim, "duo_seat_count", false),
				ClaimRealm: "saas",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Resolve(tc.req, seats); got != tc.want {
				t.Errorf("\n got %v %+v\nwant %v %+v", got, got, tc.want, tc.want)
			}
		})
	}
}

func TestSeatBuckets(t *testing.T) {
	for _, tc := range []struct {
		header, want string
	}{
		{"", "any"}, {"0", "any"}, {"-5", "any"}, {"many", "any"}, {"1e3", "any"}, {"12.0", "any"},
		{" 5", "any"}, {"99999999999999999999", "any"}, {"NaN", "any"}, {"0x10", "any"},
		{"1", "small"}, {"100", "small"}, {"101", "medium"}, {"1000", "medium"}, {"1001", "large"}, {"999999", "large"},
	} {
		id := Resolve(Request{TokenValid: true, Headers: map[string]string{HeaderSeatCount: tc.header}}, seats)
		if id.SeatBucket.Value != tc.want {
			t.Errorf("header %q: bucket %q, want %q", tc.header, id.SeatBucket.Value, tc.want)
		}
	}
	for _, tc := range []struct {
		claim any
		want  string
	}{
		{float64(1), "small"}, {float64(100.5), "any"}, {float64(-1), "any"}, {"250", "medium"}, {true, "any"},
		{[]any{float64(5)}, "any"}, {int64(5000), "large"}, {json.Number("x"), "any"},
	} {
		id := Resolve(Request{TokenValid: true, Claims: map[string]any{"duo_seat_count": tc.claim}, Headers: map[string]string{HeaderSeatCount: "3"}}, seats)
		if id.SeatBucket.Value != tc.want || id.SeatBucket.From != FromClaim {
			t.Errorf("claim %#v: bucket %q from %v, want %q from the claim", tc.claim, id.SeatBucket.Value, id.SeatBucket.From, tc.want)
		}
	}
}

func TestMismatch(t *testing.T) {
	b := manifest.DefaultBindings()
	for _, tc := range []struct {
		name    string
		kind    string
		claims  map[string]any
		headers map[string]string
		want    string
	}{
		{"all bound", "instance", map[string]any{"gitlab_realm": "saas", "sub": "i"}, map[string]string{"x-gitlab-realm": "saas", "x-gitlab-instance-id": "i"}, ""},
		{"realm first", "instance", map[string]any{"gitlab_realm": "saas", "sub": "i"}, map[string]string{"x-gitlab-realm": "x", "x-gitlab-instance-id": "y"}, "X-Gitlab-Realm"},
		{"absent header differs", "instance", map[string]any{"sub": "i"}, map[string]string{}, "X-Gitlab-Instance-Id"},
		{"empty and null claims are not bound", "instance", map[string]any{"sub": "", "gitlab_realm": nil}, map[string]string{"x-gitlab-realm": "x"}, ""},
		{"a non-string claim never equals a header", "instance", map[string]any{"gitlab_instance_id": float64(1)}, map[string]string{"x-gitlab-instance-id": "1"}, "X-Gitlab-Instance-Id"},
		{"user sub binds the user header", "user", map[string]any{"sub": "u"}, map[string]string{"x-gitlab-instance-id": "other", "x-gitlab-global-user-id": "v"}, "X-Gitlab-Global-User-Id"},
		{"user sub does not bind the instance header", "user", map[string]any{"sub": "u"}, map[string]string{"x-gitlab-instance-id": "other", "x-gitlab-global-user-id": "u"}, ""},
	} {
		if got := Mismatch(b, tc.kind, tc.claims, tc.headers); got != tc.want {
			t.Errorf("%s: Mismatch = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestString(t *testing.T) {
	id := Resolve(Request{TokenValid: true, Kind: "instance", Claims: map[string]any{"sub": "i"}, Headers: map[string]string{HeaderSeatCount: "5", HeaderInstanceID: "j"}}, seats)
	want := "instance_id=claim:sub(header ignored) global_user_id=default realm=default seat_bucket=header"
	if got := id.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
