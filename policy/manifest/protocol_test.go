package manifest

import (
	"errors"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
)

func TestProtocol(t *testing.T) {
	const routes = "routes:\n  - {id: a, methods: [POST], path: /a, public: true}\n"
	for src, want := range map[string]string{
		"backend: ai_gateway\n" + routes:                 ProtocolHTTP,
		"backend: ai_gateway\nprotocol: http\n" + routes: ProtocolHTTP,
		"backend: ai_gateway\nprotocol: grpc\n" + routes: ProtocolGRPC,
	} {
		m, err := Parse("m.yaml", []byte(src), testCatalog())
		if err != nil || m.Protocol != want {
			t.Errorf("%q: protocol %q, err %v; want %q", src, m.Protocol, err, want)
		}
	}
	_, err := Parse("m.yaml", []byte("backend: ai_gateway\nprotocol: GRPC\n"+routes), testCatalog())
	var ve *catalog.ValidationError
	if !errors.As(err, &ve) || ve.Error() != `m.yaml:2:11: field "protocol" must be http or grpc, got "GRPC"` {
		t.Errorf("err %v", err)
	}
	m, err := Example("duo_workflow")
	if err != nil || m.Protocol != ProtocolGRPC {
		t.Errorf("the duo_workflow example must be a gRPC backend: %v %v", m, err)
	}
}
