package api

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ccauthz/ccauthz/catalog"
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

// CatalogSource returns the catalog the server decides with now, or nil
// before the first snapshot.
type CatalogSource func() *catalog.Catalog

// CatalogService implements ccauthz.v1.CatalogService.
type CatalogService struct {
	ccauthzv1.UnimplementedCatalogServiceServer
	catalog CatalogSource
	now     func() time.Time
}

// NewCatalogService serves the catalog source returns; now is the clock
// Grant uses when no time is given.
func NewCatalogService(source CatalogSource, now func() time.Time) *CatalogService {
	if now == nil {
		now = time.Now
	}
	return &CatalogService{catalog: source, now: now}
}

func (s *CatalogService) current() (*catalog.Catalog, error) {
	c := s.catalog()
	if c == nil {
		return nil, status.Error(codes.Unavailable, "no catalog loaded yet")
	}
	return c, nil
}

// ListUnitPrimitives implements CatalogService.ListUnitPrimitives.
func (s *CatalogService) ListUnitPrimitives(_ context.Context, req *ccauthzv1.ListUnitPrimitivesRequest) (*ccauthzv1.ListUnitPrimitivesResponse, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	var ups []*catalog.UnitPrimitive
	for _, name := range c.UnitPrimitiveNames() {
		ups = append(ups, c.UnitPrimitives[name])
	}
	if b := req.GetBackend(); b != "" {
		if _, ok := c.Backend(b); !ok {
			return nil, status.Errorf(codes.InvalidArgument, "unknown backend %q%s", b, catalog.DidYouMean(b, backendKeys(c)))
		}
		ups = c.UnitPrimitivesOfBackend(b)
	}
	if a := req.GetAddOn(); a != "" {
		if _, ok := c.AddOns[a]; !ok {
			return nil, status.Errorf(codes.InvalidArgument, "unknown add-on %q%s", a, catalog.DidYouMean(a, sortedKeys(c.AddOns)))
		}
		bundled := c.UnitPrimitivesOfAddOn(a)
		ups = slices.DeleteFunc(ups, func(u *catalog.UnitPrimitive) bool { return !slices.Contains(bundled, u) })
	}
	resp := &ccauthzv1.ListUnitPrimitivesResponse{Catalog: info(c)}
	for _, u := range ups {
		resp.UnitPrimitives = append(resp.UnitPrimitives, unitPrimitive(c, u))
	}
	return resp, nil
}

// GetUnitPrimitive implements CatalogService.GetUnitPrimitive.
func (s *CatalogService) GetUnitPrimitive(_ context.Context, req *ccauthzv1.GetUnitPrimitiveRequest) (*ccauthzv1.GetUnitPrimitiveResponse, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	u, ok := c.Lookup(name)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "unknown unit primitive %q%s", name, catalog.DidYouMean(name, upNames(c)))
	}
	resp := &ccauthzv1.GetUnitPrimitiveResponse{UnitPrimitive: unitPrimitive(c, u), Catalog: info(c)}
	if name != u.Name {
		resp.LookedUpAs = name
	}
	for _, sn := range sortedKeys(c.Services) {
		if slices.Contains(c.Services[sn].UnitPrimitives, u.Name) {
			resp.Services = append(resp.Services, sn)
		}
	}
	return resp, nil
}

// ListBackends implements CatalogService.ListBackends.
func (s *CatalogService) ListBackends(context.Context, *ccauthzv1.ListBackendsRequest) (*ccauthzv1.ListBackendsResponse, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	resp := &ccauthzv1.ListBackendsResponse{Catalog: info(c)}
	for _, name := range sortedKeys(c.BackendServices) {
		b := c.BackendServices[name]
		pb := &ccauthzv1.Backend{Name: b.Name, Audience: b.JWTAud, Description: b.Description, Group: b.Group, ProjectUrl: b.ProjectURL}
		for _, u := range c.UnitPrimitivesOfBackend(name) {
			pb.UnitPrimitives = append(pb.UnitPrimitives, u.Name)
		}
		resp.Backends = append(resp.Backends, pb)
	}
	return resp, nil
}

// ListAddOns implements CatalogService.ListAddOns.
func (s *CatalogService) ListAddOns(context.Context, *ccauthzv1.ListAddOnsRequest) (*ccauthzv1.ListAddOnsResponse, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	resp := &ccauthzv1.ListAddOnsResponse{Catalog: info(c)}
	for _, name := range sortedKeys(c.AddOns) {
		a := &ccauthzv1.AddOn{Name: name, Description: c.AddOns[name].Description}
		for _, u := range c.UnitPrimitivesOfAddOn(name) {
			a.UnitPrimitives = append(a.UnitPrimitives, u.Name)
		}
		resp.AddOns = append(resp.AddOns, a)
	}
	return resp, nil
}

// Grant implements CatalogService.Grant: the same function as `ccauthz
// catalog scopes` (catalog.Grant). An unknown add-on is an error rather than
// silently granting nothing.
func (s *CatalogService) Grant(_ context.Context, req *ccauthzv1.GrantRequest) (*ccauthzv1.GrantResponse, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	at := s.now().UTC()
	if req.GetAt() != nil {
		if err := req.GetAt().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "at: %v", err)
		}
		at = req.GetAt().AsTime()
	}
	var addOns []string
	for _, a := range req.GetAddOns() {
		a = strings.TrimSpace(a)
		if _, ok := c.AddOns[a]; !ok {
			return nil, status.Errorf(codes.InvalidArgument, "unknown add-on %q%s", a, catalog.DidYouMean(a, sortedKeys(c.AddOns)))
		}
		addOns = append(addOns, a)
	}
	g := c.Grant(addOns, at)
	return &ccauthzv1.GrantResponse{Scopes: g.Scopes, Audiences: g.Audiences, At: timestamppb.New(at), Catalog: info(c)}, nil
}

func unitPrimitive(c *catalog.Catalog, u *catalog.UnitPrimitive) *ccauthzv1.UnitPrimitive {
	pb := &ccauthzv1.UnitPrimitive{
		Name: u.Name, Description: u.Description, Group: u.Group, FeatureCategory: u.FeatureCategory,
		DocumentationUrl: u.DocumentationURL, Milestone: u.Milestone,
		BackendServices: u.BackendServices, Audiences: c.Audiences(u.Name), AddOns: u.AddOns,
		LicenseTypes: u.LicenseTypes, AliasNames: u.AliasNames,
		MinGitlabVersion: u.MinGitLabVersion, MinGitlabVersionForFreeAccess: u.MinGitLabVersionForFreeAccess,
		Deprecated: u.Deprecated(), DeprecationMessage: u.DeprecationMessage, DeprecatedByUrl: u.DeprecatedByURL,
	}
	if u.CutOffDate != nil {
		pb.CutOffDate = timestamppb.New(*u.CutOffDate)
	}
	return pb
}

func info(c *catalog.Catalog) *ccauthzv1.CatalogInfo {
	return &ccauthzv1.CatalogInfo{Source: c.Source, Shape: string(c.Shape), Digest: c.Digest()}
}

// backendKeys are the names a backend may be looked up by: catalog names
// and audiences.
func backendKeys(c *catalog.Catalog) []string {
	var out []string
	for _, name := range sortedKeys(c.BackendServices) {
		out = append(out, name, c.BackendServices[name].JWTAud)
	}
	return out
}

func upNames(c *catalog.Catalog) []string {
	var out []string
	for _, name := range c.UnitPrimitiveNames() {
		out = append(out, name)
		out = append(out, c.UnitPrimitives[name].AliasNames...)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
