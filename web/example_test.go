package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"ferry/node"
	"ferry/web"
)

// A node's web inbox, served on a free port. The first visitor is sent to
// the setup page, which asks for the one-time code.
func Example() {
	dir, err := os.MkdirTemp("", "ferry-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	n, err := node.Init(filepath.Join(dir, "north"), "north", node.Options{})
	if err != nil {
		panic(err)
	}
	defer n.Close()

	srv, err := web.New(n, web.Options{})
	if err != nil {
		panic(err)
	}
	if err := srv.Open("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Close()
	code, err := srv.SetupCode(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println("setup code:", len(code), "characters")

	resp, err := http.Get("http://" + srv.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Request.URL.Path)
	// Output:
	// setup code: 19 characters
	// 200 /setup
}
