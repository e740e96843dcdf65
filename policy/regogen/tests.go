package regogen

import (
	"fmt"
	"strings"
)

// testModule renders the cases of one file as an `opa test` module.
func testModule(cs []Case, hash string) string {
	var b strings.Builder
	b.WriteString(stamp(hash))
	pkg := "ccauthz.test.policy"
	if cs[0].Route != "" {
		pkg = "ccauthz.test.routes." + cs[0].Route
		fmt.Fprintf(&b, "# Tests for route %q: allowed with the right token and headers, and every denial\n# that applies to it.\n", cs[0].Route)
	} else {
		b.WriteString("# Tests for the policy as a whole.\n")
	}
	fmt.Fprintf(&b, "package %s\n\nimport data.ccauthz.main\n\n", pkg)
	for _, c := range cs {
		fmt.Fprintf(&b, "test_%s if {\n", c.Name)
		fmt.Fprintf(&b, "\tdoc := %s\n", lit(c.Input))
		b.WriteString("\td := main.decision with input as doc\n")
		// The fast allow path and the full chain must agree on every input.
		b.WriteString("\td == main.full_decision with input as doc\n")
		e := c.Expect
		fmt.Fprintf(&b, "\td.allow == %t\n", e.Allow)
		fmt.Fprintf(&b, "\td.status == %d\n", e.Status)
		fmt.Fprintf(&b, "\td.reason == %s\n", lit(e.Reason))
		fmt.Fprintf(&b, "\td.body == %s\n", lit(e.Body))
		fmt.Fprintf(&b, "\td.route == %s\n", lit(e.Route))
		fmt.Fprintf(&b, "\td.dry_run == %t\n", e.DryRun)
		if e.UnitPrimitives != nil {
			fmt.Fprintf(&b, "\td.unit_primitives == %s\n", lit(e.UnitPrimitives))
		}
		for _, k := range sortedKeys(e.Headers) {
			fmt.Fprintf(&b, "\td.headers[%s] == %s\n", lit(k), lit(e.Headers[k]))
		}
		for _, k := range sortedKeys(e.RateLimitEntries) {
			fmt.Fprintf(&b, "\td.rate_limit.entries[%s] == %s\n", lit(k), lit(e.RateLimitEntries[k]))
		}
		b.WriteString("}\n\n")
	}
	return b.String()
}
