package token

import (
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
)

var (
	issuerFields = []string{"name", "issuer", "discovery_url", "jwks_url", "jwks_file", "algorithms", "kind", "realm", "keys"}
	keysFields   = []string{"refresh_floor", "refresh_ceiling", "stale_max_age", "unknown_kid_interval", "fetch_timeout"}
)

// DecodeIssuers decodes the `issuers` list at n, applies defaults and
// validates it, recording every problem in r as file:line:col: message.
// Callers check r.Problems before using the result.
func DecodeIssuers(r catalog.NodeReader, n *yaml.Node) []IssuerConfig {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, "issuers must be a list of issuers")
		return nil
	}
	out := make([]IssuerConfig, 0, len(n.Content))
	nodes := make([]map[string]*yaml.Node, 0, len(n.Content))
	items := make([]*yaml.Node, 0, len(n.Content))
	for _, item := range n.Content {
		f := r.Fields(item, "issuer", issuerFields, nil)
		if f == nil {
			continue
		}
		var ic IssuerConfig
		ic.Name, _ = r.String(f["name"], "name")
		ic.Issuer, _ = r.String(f["issuer"], "issuer")
		ic.DiscoveryURL, _ = r.String(f["discovery_url"], "discovery_url")
		ic.JWKSURL, _ = r.String(f["jwks_url"], "jwks_url")
		ic.JWKSFile, _ = r.String(f["jwks_file"], "jwks_file")
		ic.Algorithms = r.Strings(f["algorithms"], "algorithms")
		kind, _ := r.String(f["kind"], "kind")
		ic.Kind = Kind(kind)
		ic.Realm, _ = r.String(f["realm"], "realm")
		if kn := f["keys"]; kn != nil {
			kf := r.Fields(kn, "issuer keys", keysFields, nil)
			ic.Keys.RefreshFloor, _ = r.Duration(kf["refresh_floor"], "refresh_floor")
			ic.Keys.RefreshCeiling, _ = r.Duration(kf["refresh_ceiling"], "refresh_ceiling")
			ic.Keys.StaleMaxAge, _ = r.Duration(kf["stale_max_age"], "stale_max_age")
			ic.Keys.UnknownKIDInterval, _ = r.Duration(kf["unknown_kid_interval"], "unknown_kid_interval")
			ic.Keys.FetchTimeout, _ = r.Duration(kf["fetch_timeout"], "fetch_timeout")
			f["keys"] = kn
			for k, v := range kf {
				f["keys."+k] = v
			}
		}
		out = append(out, ic.WithDefaults())
		nodes = append(nodes, f)
		items = append(items, item)
	}
	checkList(out, func(i int, field, format string, args ...any) {
		if i < 0 {
			r.Errorf(n, format, args...)
			return
		}
		// Point at the field's value when it is written, else at the
		// nearest written parent, else at the issuer.
		at := items[i]
		for f := field; f != ""; {
			if v := nodes[i][f]; v != nil {
				at = v
				break
			}
			dot := strings.LastIndexByte(f, '.')
			if dot < 0 {
				break
			}
			f = f[:dot]
		}
		r.Errorf(at, format, args...)
	})
	return out
}
