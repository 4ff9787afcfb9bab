// Command otlpsink is the peer bench's trace and metrics collector: a gRPC server
// that accepts every OTLP export (any service, any method) and answers an empty
// response, so the adapter under test pays for a real exporter without the bench
// depending on a collector build. Nothing it receives is decoded or kept; it
// counts the exports and prints the count when stopped.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// rawCodec hands message bytes through untouched: an empty reply is a valid
// empty Export*ServiceResponse.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = data
	return nil
}
func (rawCodec) Name() string { return "proto" } // replaces the default codec in this process

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	encoding.RegisterCodec(rawCodec{})
	var exports atomic.Int64
	server := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var in []byte
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		exports.Add(1)
		out := []byte{}
		return stream.SendMsg(&out)
	}))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		fmt.Fprintf(os.Stderr, "otlpsink: %d exports received\n", exports.Load())
		server.Stop()
	}()
	if err := server.Serve(ln); err != nil {
		log.Fatal(err)
	}
}
