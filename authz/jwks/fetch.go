package jwks

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxDocumentBytes bounds a discovery document or a JWKS read from the
// network or a file.
const maxDocumentBytes = 1 << 20

// maxRedirects bounds the redirects one discovery or JWKS request follows.
const maxRedirects = 3

// checkRedirect is the redirect policy of key fetches: at most maxRedirects,
// and never from https to plain http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	if prev := via[len(via)-1]; prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing a redirect from https to %s (%s)", req.URL.Scheme, req.URL.Redacted())
	}
	return nil
}

// read loads the keys from the configured source. ttl is the lifetime of
// network keys (0 for a file); changed is false when a file is unchanged.
func (c *Cache) read() (keys []*Key, ttl time.Duration, changed bool, err error) {
	if c.cfg.File != "" {
		keys, changed, err = c.readFile()
		return keys, 0, changed, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.FetchTimeout)
	defer cancel()
	jwksURL := c.cfg.JWKSURL
	if c.cfg.DiscoveryURL != "" {
		jwksURL, err = c.discover(ctx)
		if err != nil {
			return nil, 0, false, err
		}
	}
	body, header, err := c.get(ctx, jwksURL)
	if err != nil {
		return nil, 0, false, err
	}
	keys, err = ParseJWKS(body)
	if err != nil {
		return nil, 0, false, fmt.Errorf("JWKS from %s is invalid: %w", jwksURL, err)
	}
	return keys, c.lifetime(header.Get("Cache-Control")), true, nil
}

func (c *Cache) readFile() ([]*Key, bool, error) {
	f, err := os.Open(c.cfg.File)
	if err != nil {
		return nil, false, fmt.Errorf("read JWKS file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDocumentBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("read JWKS file %s: %w", c.cfg.File, err)
	}
	if len(data) > maxDocumentBytes {
		return nil, false, fmt.Errorf("JWKS file %s is larger than %d bytes", c.cfg.File, maxDocumentBytes)
	}
	sum := sha256.Sum256(data)
	c.mu.Lock()
	same := sum == c.fileHash && c.snap.Load() != nil
	c.mu.Unlock()
	if same {
		return nil, false, nil
	}
	keys, err := ParseJWKS(data)
	if err != nil {
		return nil, false, fmt.Errorf("JWKS file %s is invalid (keeping the last good keys): %w", c.cfg.File, err)
	}
	c.mu.Lock()
	c.fileHash = sum
	c.mu.Unlock()
	return keys, true, nil
}

// discover reads the OIDC discovery document and returns its jwks_uri.
func (c *Cache) discover(ctx context.Context) (string, error) {
	body, _, err := c.get(ctx, c.cfg.DiscoveryURL)
	if err != nil {
		return "", err
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery document %s is not JSON: %w", c.cfg.DiscoveryURL, err)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("discovery document %s has no jwks_uri", c.cfg.DiscoveryURL)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("discovery document %s: jwks_uri %q is not an http(s) URL", c.cfg.DiscoveryURL, doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}

func (c *Cache) get(ctx context.Context, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, nil, fmt.Errorf("GET %s: no answer within %s: %w", u, c.cfg.FetchTimeout, err)
		}
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, fmt.Errorf("GET %s: HTTP status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading body: %w", u, err)
	}
	if len(body) > maxDocumentBytes {
		return nil, nil, fmt.Errorf("GET %s: body larger than %d bytes", u, maxDocumentBytes)
	}
	return body, resp.Header, nil
}

// lifetime turns a Cache-Control header into the keys' lifetime, clamped to
// [RefreshFloor, RefreshCeiling]. No max-age (or no-store/no-cache) means
// RefreshFloor: refetching a small document every few minutes is cheap.
func (c *Cache) lifetime(cacheControl string) time.Duration {
	ttl := c.cfg.RefreshFloor
	for _, d := range strings.Split(cacheControl, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "no-store" || d == "no-cache" {
			return c.cfg.RefreshFloor
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64); err == nil && n >= 0 {
				ttl = time.Duration(min(n, int64(1<<62/time.Second))) * time.Second
			}
		}
	}
	return min(max(ttl, c.cfg.RefreshFloor), c.cfg.RefreshCeiling)
}
