// Command upstream is the peer bench's compiled upstream: it answers every
// GET /v1/devices/{id} with the same Device JSON (read once from -body), in
// microseconds, so that whatever sits in front of it is what gets measured.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on")
	bodyPath := flag.String("body", "", "file holding the Device JSON to answer with")
	flag.Parse()
	body, err := os.ReadFile(*bodyPath)
	if err != nil {
		log.Fatalf("reading -body: %v", err)
	}
	length := strconv.Itoa(len(body))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{length}
		h["X-Request-Id"] = []string{"bench"}
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	// The bench reads this line to learn the port.
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal((&http.Server{Handler: mux}).Serve(ln))
}
