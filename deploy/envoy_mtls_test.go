package deploy

import (
	"os"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// TestEnvoyMTLSBootstrap decodes and validates the mTLS bootstrap (every Any
// included) and checks the ccauthz cluster's transport socket: a client
// certificate, a trusted CA with a name to match, TLS 1.2 or later, ALPN h2;
// and that its health checks notice NOT_SERVING within ccauthz's drain delay.
func TestEnvoyMTLSBootstrap(t *testing.T) {
	data, err := os.ReadFile("envoy/envoy-mtls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeEnvoyBootstrap(data)
	if err != nil {
		t.Fatalf("envoy/envoy-mtls.yaml: %v", err)
	}
	var c *clusterv3.Cluster
	for _, cl := range b.GetStaticResources().GetClusters() {
		if cl.GetName() == "ccauthz" {
			c = cl
		}
	}
	if c == nil {
		t.Fatal("no ccauthz cluster")
	}
	ts := c.GetTransportSocket()
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Fatalf("ccauthz cluster transport socket %q, want envoy.transport_sockets.tls", ts.GetName())
	}
	var up tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&up); err != nil {
		t.Fatal(err)
	}
	ctx := up.GetCommonTlsContext()
	if len(ctx.GetTlsCertificates()) != 1 || ctx.GetTlsCertificates()[0].GetCertificateChain().GetFilename() == "" ||
		ctx.GetTlsCertificates()[0].GetPrivateKey().GetFilename() == "" {
		t.Error("Envoy must present a client certificate and key (ccauthz requires mTLS)")
	}
	vc := ctx.GetValidationContext()
	if vc.GetTrustedCa().GetFilename() == "" {
		t.Error("Envoy must verify ccauthz's certificate against a trusted CA")
	}
	if len(vc.GetMatchTypedSubjectAltNames()) == 0 || up.GetSni() == "" {
		t.Error("Envoy must check ccauthz's name (SAN) and send SNI")
	}
	if v := ctx.GetTlsParams().GetTlsMinimumProtocolVersion(); v < tlsv3.TlsParameters_TLSv1_2 {
		t.Errorf("minimum TLS version %v, want 1.2 or later", v)
	}
	if !strings.Contains(strings.Join(ctx.GetAlpnProtocols(), ","), "h2") {
		t.Error("ALPN must offer h2: ccauthz speaks gRPC and requires it over TLS")
	}

	// The health checks notice NOT_SERVING before ccauthz stops answering.
	cfg, _ := k8sConfig(t)
	for _, hc := range c.GetHealthChecks() {
		if hc.GetGrpcHealthCheck() == nil {
			t.Error("the ccauthz cluster's health check must be gRPC health (it follows NOT_SERVING)")
		}
		notice := time.Duration(hc.GetUnhealthyThreshold().GetValue())*hc.GetInterval().AsDuration() + hc.GetTimeout().AsDuration()
		if notice > cfg.DrainDelay {
			t.Errorf("Envoy takes up to %v to mark a draining replica unhealthy, longer than drain_delay %v", notice, cfg.DrainDelay)
		}
	}
	if len(c.GetHealthChecks()) == 0 {
		t.Error("the ccauthz cluster has no health check")
	}
}
