package policy

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/ccauthz/ccauthz/policy/identity"
)

// value builds the whole Rego input document (every header and claim).
func (in *Input) value(id *identity.Identity) (ast.Value, error) {
	return in.valueOf(id, &inputShape{})
}

// valueOf builds the Rego input document directly as an ast.Value: no JSON
// round trip, no reflection for the request part, and only the headers and
// claims the shape names (a nil list: all of them).
func (in *Input) valueOf(id *identity.Identity, shape *inputShape) (ast.Value, error) {
	var headers [][2]*ast.Term
	if shape.headers == nil {
		headers = make([][2]*ast.Term, 0, len(in.Headers))
		for k, v := range in.Headers {
			if k == "authorization" {
				continue // never given to Rego, whatever the caller passed
			}
			headers = append(headers, [2]*ast.Term{shape.term(k), shape.term(v)})
		}
	} else {
		headers = make([][2]*ast.Term, 0, len(shape.headers))
		for _, k := range shape.headers {
			if v, ok := in.Headers[k]; ok && k != "authorization" {
				headers = append(headers, [2]*ast.Term{shape.term(k), shape.term(v)})
			}
		}
	}
	request := ast.NewObject(
		ast.Item(shape.term("method"), shape.term(in.Method)),
		ast.Item(shape.term("path"), shape.term(in.Path)),
		ast.Item(shape.term("query"), shape.term(in.Query)),
		ast.Item(shape.term("host"), shape.term(in.Host)),
		ast.Item(shape.term("headers"), ast.NewTerm(ast.NewObject(headers...))),
		ast.Item(shape.term("body_status"), shape.term(in.Body.status())),
	)
	// The body is given to Rego only when it is complete JSON; body rules
	// read it by constant paths (input.request.body.<selector>).
	if in.Body.status() == BodyOK {
		body, err := anyToTerm(in.Body.JSON)
		if err != nil {
			return nil, fmt.Errorf("policy: request body: %w", err)
		}
		request.Insert(shape.term("body"), body)
	}
	claims, err := shape.claimsTerm(in.Token.Claims)
	if err != nil {
		return nil, fmt.Errorf("policy: token claims: %w", err)
	}
	token := ast.NewObject(
		ast.Item(shape.term("status"), shape.term(in.Token.Status)),
		ast.Item(shape.term("reason"), shape.term(in.Token.Reason)),
		ast.Item(shape.term("issuer"), shape.term(in.Token.Issuer)),
		ast.Item(shape.term("kind"), shape.term(in.Token.Kind)),
		ast.Item(shape.term("claims"), claims),
	)
	ident := ast.NewObject(
		ast.Item(shape.term("instance_id"), shape.term(id.InstanceID.Value)),
		ast.Item(shape.term("global_user_id"), shape.term(id.GlobalUserID.Value)),
		ast.Item(shape.term("realm"), shape.term(id.Realm.Value)),
		ast.Item(shape.term("seat_bucket"), shape.term(id.SeatBucket.Value)),
		ast.Item(shape.term("subject"), shape.term(id.Subject)),
		ast.Item(shape.term("claim_realm"), shape.term(id.ClaimRealm)),
	)
	return ast.NewObject(
		ast.Item(shape.term("backend"), shape.term(in.Backend)),
		ast.Item(shape.term("request"), ast.NewTerm(request)),
		ast.Item(shape.term("token"), ast.NewTerm(token)),
		ast.Item(shape.term("identity"), ast.NewTerm(ident)),
	), nil
}

// claimsTerm converts the claims the policy reads (all when the shape's
// list is nil) to a Rego object.
func (s *inputShape) claimsTerm(claims map[string]any) (*ast.Term, error) {
	if claims == nil {
		return ast.NewTerm(ast.NewObject()), nil
	}
	if s.claims == nil {
		return anyToTerm(claims)
	}
	items := make([][2]*ast.Term, 0, len(s.claims))
	for _, k := range s.claims {
		x, ok := claims[k]
		if !ok {
			continue
		}
		var term *ast.Term
		switch v := x.(type) {
		case string:
			term = s.term(v)
		case []any:
			// The scopes: unit primitive names, shared terms.
			elems := make([]*ast.Term, len(v))
			for i, e := range v {
				if str, ok := e.(string); ok {
					elems[i] = s.term(str)
					continue
				}
				t, err := anyToTerm(e)
				if err != nil {
					return nil, err
				}
				elems[i] = t
			}
			term = ast.ArrayTerm(elems...)
		default:
			t, err := anyToTerm(x)
			if err != nil {
				return nil, err
			}
			term = t
		}
		items = append(items, ast.Item(s.term(k), term))
	}
	return ast.ObjectTerm(items...), nil
}

// anyToTerm converts decoded JSON values (the claims) to a Rego term.
func anyToTerm(v any) (*ast.Term, error) {
	switch t := v.(type) {
	case nil:
		return ast.NullTerm(), nil
	case string:
		return ast.StringTerm(t), nil
	case bool:
		return ast.BooleanTerm(t), nil
	case float64:
		return ast.FloatNumberTerm(t), nil
	case int:
		return ast.IntNumberTerm(t), nil
	case int64:
		return ast.IntNumberTerm(int(t)), nil
	case json.Number:
		return ast.NumberTerm(t), nil
	case []string:
		terms := make([]*ast.Term, len(t))
		for i, s := range t {
			terms[i] = ast.StringTerm(s)
		}
		return ast.ArrayTerm(terms...), nil
	case []any:
		terms := make([]*ast.Term, len(t))
		for i, x := range t {
			term, err := anyToTerm(x)
			if err != nil {
				return nil, err
			}
			terms[i] = term
		}
		return ast.ArrayTerm(terms...), nil
	case map[string]any:
		// ast objects order their keys themselves; no sort needed here.
		items := make([][2]*ast.Term, 0, len(t))
		for k, x := range t {
			term, err := anyToTerm(x)
			if err != nil {
				return nil, err
			}
			items = append(items, ast.Item(ast.StringTerm(k), term))
		}
		return ast.ObjectTerm(items...), nil
	}
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		return nil, err
	}
	return ast.NewTerm(val), nil
}
