package deploy

import (
	"encoding/json"
	"errors"
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"

	// Typed configs the shipped bootstrap uses; registering them lets the
	// decoder resolve every "@type" and validate what is inside.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// validator is implemented by every go-control-plane message (protoc-gen-validate).
type validator interface {
	ValidateAll() error
}

// DecodeEnvoyBootstrap decodes an Envoy bootstrap in YAML the way Envoy reads
// it (proto3 JSON mapping, unknown fields rejected) and validates it: the
// Bootstrap itself and, recursively, every typed config packed in an Any,
// which the Bootstrap's own validation does not look into.
func DecodeEnvoyBootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	js, err := json.Marshal(jsonCompatible(doc))
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	if err := validateDeep(b.ProtoReflect(), "bootstrap"); err != nil {
		return nil, err
	}
	return &b, nil
}

// validateDeep validates m and walks its fields, unpacking and validating
// every Any on the way.
func validateDeep(m protoreflect.Message, path string) error {
	if v, ok := m.Interface().(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(a.GetTypeUrl())
		if err != nil {
			return fmt.Errorf("%s: unknown type %q: %w", path, a.GetTypeUrl(), err)
		}
		inner := mt.New().Interface()
		if err := proto.Unmarshal(a.GetValue(), inner); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return validateDeep(inner.ProtoReflect(), path+"("+string(mt.Descriptor().FullName())+")")
	}
	var errs []error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				errs = append(errs, validateDeep(l.Get(i).Message(), fmt.Sprintf("%s[%d]", name, i)))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				errs = append(errs, validateDeep(mv.Message(), fmt.Sprintf("%s[%v]", name, k.Interface())))
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			errs = append(errs, validateDeep(v.Message(), name))
		}
		return true
	})
	return errors.Join(errs...)
}

// jsonCompatible turns yaml.v3's decoded values into ones encoding/json
// accepts (maps with string keys).
func jsonCompatible(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonCompatible(x)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = jsonCompatible(x)
		}
		return out
	case []any:
		for i, x := range t {
			t[i] = jsonCompatible(x)
		}
		return t
	}
	return v
}
