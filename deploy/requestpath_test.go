package deploy

import (
	"os"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

// escapedSlashActions are the Envoy actions each request_path
// escaped_slashes value matches.
var escapedSlashActions = map[requestpath.EscapedSlashes][]hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction{
	requestpath.EscapedSlashesReject:   {hcmv3.HttpConnectionManager_REJECT_REQUEST},
	requestpath.EscapedSlashesKeep:     {hcmv3.HttpConnectionManager_KEEP_UNCHANGED},
	requestpath.EscapedSlashesUnescape: {hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT},
}

// TestEnvoyBootstrapsNormalisePaths: every shipped Envoy bootstrap
// normalises the path the way ccauthz's default request_path judges it, so
// the route ccauthz decides on is the route the backend serves.
func TestEnvoyBootstrapsNormalisePaths(t *testing.T) {
	def := config.Default().RequestPath.Options()
	for _, file := range []string{"envoy/envoy.yaml", "envoy/envoy-http.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DecodeEnvoyBootstrap(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, l := range b.GetStaticResources().GetListeners() {
			for _, fc := range l.GetFilterChains() {
				for _, f := range fc.GetFilters() {
					if f.GetName() != "envoy.filters.network.http_connection_manager" {
						continue
					}
					var hcm hcmv3.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						t.Fatal(err)
					}
					if !hcm.GetNormalizePath().GetValue() {
						t.Errorf("%s listener %s: normalize_path must be true", file, l.GetName())
					}
					if hcm.GetMergeSlashes() != def.MergeSlashes {
						t.Errorf("%s listener %s: merge_slashes %v, ccauthz's default %v", file, l.GetName(), hcm.GetMergeSlashes(), def.MergeSlashes)
					}
					ok := false
					for _, a := range escapedSlashActions[def.EscapedSlashes] {
						ok = ok || hcm.GetPathWithEscapedSlashesAction() == a
					}
					if !ok {
						t.Errorf("%s listener %s: path_with_escaped_slashes_action %v does not match ccauthz's default %q",
							file, l.GetName(), hcm.GetPathWithEscapedSlashesAction(), def.EscapedSlashes)
					}
				}
			}
		}
	}
}
