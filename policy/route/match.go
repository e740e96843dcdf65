package route

import (
	"strings"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Matcher finds a request's route. It is immutable and safe for concurrent
// use.
type Matcher struct {
	// exact maps method + "\x00" + path to a route index; ambiguousIndex
	// when two routes claim the same method and path.
	exact map[string]int
	// patterns are the pattern routes of each method, most specific first.
	patterns map[string][]pattern
}

// ambiguousIndex marks a method and path two routes claim (the Rego routing
// then fails with a conflict; the manifest loader rejects such manifests).
const ambiguousIndex = -2

type pattern struct {
	route int
	rank  string
	segs  []manifest.Segment
	// n is the number of segments before the final wildcard, or all of them.
	n        int
	wildcard bool
}

// Match is the route a request matched.
type Match struct {
	// Route is the index of the matched route in the manifest's Routes, or
	// -1 when no route matches.
	Route int
	// Ambiguous is true when several routes match equally well: the Rego
	// routing fails on such a request (a conflict), so nothing may be
	// assumed about it.
	Ambiguous bool
	// Parts is the path split as the Rego routing splits it (without its
	// first "/"), set for a pattern route; a {param} is Parts[i] for the
	// param's segment index i.
	Parts []string
	// Rest is what the route's final "*" matched ("" for other routes).
	Rest string
}

// New builds the matcher of a manifest.
func New(m *manifest.Manifest) *Matcher {
	mt := &Matcher{exact: map[string]int{}, patterns: map[string][]pattern{}}
	for i, r := range m.Routes {
		if r.IsExact() {
			for _, meth := range r.Methods {
				k := meth + "\x00" + r.Path
				if j, ok := mt.exact[k]; ok && j != i {
					mt.exact[k] = ambiguousIndex
					continue
				}
				mt.exact[k] = i
			}
			continue
		}
		p := pattern{route: i, rank: r.Rank(), segs: r.Segments, n: len(r.Segments)}
		for j, s := range r.Segments {
			if s.Kind == manifest.SegWildcard {
				p.n, p.wildcard = j, true
				break
			}
		}
		for _, meth := range r.Methods {
			mt.patterns[meth] = append(mt.patterns[meth], p)
		}
	}
	for meth, ps := range mt.patterns {
		// Most specific first (rank compares as the Rego max does: as
		// strings); ties keep manifest order.
		sorted := make([]pattern, len(ps))
		copy(sorted, ps)
		for i := 1; i < len(sorted); i++ {
			for j := i; j > 0 && sorted[j].rank > sorted[j-1].rank; j-- {
				sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
			}
		}
		mt.patterns[meth] = sorted
	}
	return mt
}

// Match finds the route of a request: an exact route (method and the path as
// given) wins; otherwise the matching pattern route of the highest rank.
func (mt *Matcher) Match(method, path string) Match {
	if i, ok := mt.exact[method+"\x00"+path]; ok {
		if i == ambiguousIndex {
			return Match{Route: -1, Ambiguous: true}
		}
		return Match{Route: i}
	}
	ps := mt.patterns[method]
	if len(ps) == 0 {
		return Match{Route: -1}
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	found, best := Match{Route: -1}, ""
	for _, p := range ps {
		if found.Route >= 0 && p.rank < best {
			break // sorted: no later pattern ranks as high
		}
		rest, ok := p.match(parts)
		if !ok {
			continue
		}
		if found.Route >= 0 {
			if found.Route != p.route || found.Rest != rest {
				return Match{Route: -1, Ambiguous: true}
			}
			continue
		}
		found, best = Match{Route: p.route, Parts: parts, Rest: rest}, p.rank
	}
	return found
}

// match reports whether the split path matches the pattern, and the rest its
// wildcard matched: literal segments equal, {param} segments non-empty, and
// a final "*" at least one more part whose joined text is not empty.
func (p pattern) match(parts []string) (string, bool) {
	if p.wildcard {
		if len(parts) <= p.n {
			return "", false
		}
	} else if len(parts) != p.n {
		return "", false
	}
	for i := 0; i < p.n; i++ {
		switch p.segs[i].Kind {
		case manifest.SegLiteral:
			if parts[i] != p.segs[i].Value {
				return "", false
			}
		case manifest.SegParam:
			if parts[i] == "" {
				return "", false
			}
		}
	}
	if !p.wildcard {
		return "", true
	}
	rest := strings.Join(parts[p.n:], "/")
	return rest, rest != ""
}
