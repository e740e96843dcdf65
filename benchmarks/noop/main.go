// Command noop is an Envoy ext_authz gRPC server that answers every Check with
// OK and does no other work. It measures the protocol's ceiling on a machine:
// benchmarks/run.sh drives it and ccauthz with the same load and reports the
// ratio.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
)

type server struct {
	authv3.UnimplementedAuthorizationServer
	ok *authv3.CheckResponse
}

// Check answers OK with an empty OkHttpResponse: the smallest valid allow.
func (s *server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.ok, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9292", "listen address (host:port; port 0 picks a free one)")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, &server{ok: &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}})
	reflection.Register(srv)
	// run.sh waits for this line to know the address.
	fmt.Printf("noop ext_authz listening on %s\n", lis.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
