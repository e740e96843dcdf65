//go:build amd64 || arm64

package server

// reserveStack: see stack.go.
func reserveStack()
