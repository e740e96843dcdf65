package api

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ccauthz/ccauthz/catalog"
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

var fixedNow = time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)

func exampleServices() *Services {
	c := catalog.Example()
	return &Services{Catalog: NewCatalogService(func() *catalog.Catalog { return c }, func() time.Time { return fixedNow }), GRPC: true, Admin: true}
}

// grpcClient serves s on a loopback port and returns a client; both stop
// with the test.
func grpcClient(t *testing.T, s *Services) ccauthzv1.CatalogServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	s.RegisterGRPC(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ccauthzv1.NewCatalogServiceClient(conn)
}

// TestCatalogServiceGRPC: every method answers what the catalog package
// answers, over a real gRPC connection.
func TestCatalogServiceGRPC(t *testing.T) {
	ctx := context.Background()
	c := catalog.Example()
	cl := grpcClient(t, exampleServices())

	list, err := cl.ListUnitPrimitives(ctx, &ccauthzv1.ListUnitPrimitivesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetUnitPrimitives()) != len(c.UnitPrimitives) || list.GetCatalog().GetDigest() != c.Digest() {
		t.Errorf("list: %d unit primitives, digest %s; want %d, %s", len(list.GetUnitPrimitives()), list.GetCatalog().GetDigest(), len(c.UnitPrimitives), c.Digest())
	}
	list, err = cl.ListUnitPrimitives(ctx, &ccauthzv1.ListUnitPrimitivesRequest{Backend: "gitlab-duo-workflow-service", AddOn: "duo_enterprise"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list.GetUnitPrimitives() {
		names = append(names, u.GetName())
	}
	if !slices.Equal(names, []string{"duo_agent_platform", "self_hosted_duo_agent_platform"}) {
		t.Errorf("filtered list = %v", names)
	}

	got, err := cl.GetUnitPrimitive(ctx, &ccauthzv1.GetUnitPrimitiveRequest{Name: "code_suggestions"})
	if err != nil {
		t.Fatal(err)
	}
	up := got.GetUnitPrimitive()
	if up.GetName() != "complete_code" || got.GetLookedUpAs() != "code_suggestions" ||
		!up.GetCutOffDate().AsTime().Equal(*c.UnitPrimitives["complete_code"].CutOffDate) ||
		!slices.Equal(up.GetAudiences(), []string{"gitlab-ai-gateway"}) || !slices.Contains(got.GetServices(), "code_suggestions") {
		t.Errorf("get = %v", got)
	}
	_, err = cl.GetUnitPrimitive(ctx, &ccauthzv1.GetUnitPrimitiveRequest{Name: "duo_chats"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `unknown unit primitive "duo_chats" (did you mean "duo_chat"?)`) {
		t.Errorf("unknown: %v", err)
	}

	bs, err := cl.ListBackends(ctx, &ccauthzv1.ListBackendsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs.GetBackends()) != len(c.BackendServices) {
		t.Errorf("backends = %v", bs)
	}
	for _, b := range bs.GetBackends() {
		if b.GetAudience() != c.BackendServices[b.GetName()].JWTAud || len(b.GetUnitPrimitives()) != len(c.UnitPrimitivesOfBackend(b.GetName())) {
			t.Errorf("backend %v", b)
		}
	}
	as, err := cl.ListAddOns(ctx, &ccauthzv1.ListAddOnsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(as.GetAddOns()) != len(c.AddOns) {
		t.Errorf("add-ons = %v", as)
	}

	// Grant is catalog.Grant: at a given time and at the server's now.
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		addOns []string
		at     *timestamppb.Timestamp
		when   time.Time
	}{
		{[]string{"duo_pro"}, timestamppb.New(at), at},
		{nil, nil, fixedNow},
		{[]string{"duo_enterprise", "duo_amazon_q"}, timestamppb.New(at), at},
	} {
		g, err := cl.Grant(ctx, &ccauthzv1.GrantRequest{AddOns: tc.addOns, At: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		want := c.Grant(tc.addOns, tc.when)
		if !slices.Equal(g.GetScopes(), want.Scopes) || !slices.Equal(g.GetAudiences(), want.Audiences) || !g.GetAt().AsTime().Equal(tc.when) {
			t.Errorf("grant %v at %v = %v, want %v", tc.addOns, tc.when, g, want)
		}
	}
	_, err = cl.Grant(ctx, &ccauthzv1.GrantRequest{AddOns: []string{"duo_prp"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `(did you mean "duo_pro"?)`) {
		t.Errorf("unknown add-on: %v", err)
	}
}

// TestCatalogServiceNoCatalog: before the first snapshot the service says
// unavailable instead of answering from nothing.
func TestCatalogServiceNoCatalog(t *testing.T) {
	s := &Services{Catalog: NewCatalogService(func() *catalog.Catalog { return nil }, nil), GRPC: true}
	_, err := grpcClient(t, s).ListBackends(context.Background(), &ccauthzv1.ListBackendsRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("got %v, want Unavailable", err)
	}
}

// TestCatalogServiceJSON: the admin routes speak protojson and map errors
// to HTTP statuses; switched off, they are absent.
func TestCatalogServiceJSON(t *testing.T) {
	mux := http.NewServeMux()
	exampleServices().AdminRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(method, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/api/ccauthz.v1.CatalogService/"+method, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("Grant", `{"add_ons": ["duo_pro"], "at": "2025-01-01T00:00:00Z"}`)
	var g ccauthzv1.GrantResponse
	if code != 200 || protojson.Unmarshal([]byte(body), &g) != nil {
		t.Fatalf("grant: %d %s", code, body)
	}
	want := catalog.Example().Grant([]string{"duo_pro"}, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if !slices.Equal(g.GetScopes(), want.Scopes) || !strings.Contains(body, `"at":"2025-01-01T00:00:00Z"`) {
		t.Errorf("grant: %s", body)
	}
	code, body = post("GetUnitPrimitive", `{"name": "duo_chat"}`)
	if code != 200 || !strings.Contains(body, `"name":"duo_chat"`) {
		t.Errorf("get: %d %s", code, body)
	}
	code, body = post("ListBackends", "")
	if code != 200 || !strings.Contains(body, `"audience":"gitlab-ai-gateway"`) {
		t.Errorf("list backends, empty body: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, body string
		code         int
		errCode      string
	}{
		{"GetUnitPrimitive", `{"name": "nope_nope_nope"}`, 404, "NotFound"},
		{"GetUnitPrimitive", `{"nmae": "duo_chat"}`, 400, "InvalidArgument"},
		{"Grant", `{"add_ons": "duo_pro"}`, 400, "InvalidArgument"},
		{"Grant", `not json`, 400, "InvalidArgument"},
		{"Grant", `{"add_ons": ["` + strings.Repeat("a", maxRequestBytes) + `"]}`, 413, "ResourceExhausted"},
	} {
		code, body := post(tc.method, tc.body)
		var e struct{ Code, Message string }
		if code != tc.code || json.Unmarshal([]byte(body), &e) != nil || e.Code != tc.errCode || e.Message == "" {
			t.Errorf("%s %.40q: %d %.200s; want %d %s", tc.method, tc.body, code, body, tc.code, tc.errCode)
		}
	}
	resp, err := http.Get(srv.URL + "/api/ccauthz.v1.CatalogService/ListBackends")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}

	off := http.NewServeMux()
	(&Services{Catalog: exampleServices().Catalog, GRPC: true}).AdminRoutes(off)
	rec := httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest("POST", "/api/ccauthz.v1.CatalogService/ListBackends", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("admin off: %d, want 404", rec.Code)
	}
}
