//go:build !amd64 && !arm64

package server

// reserveIndex is always 0; the compiler cannot know that, so it keeps
// reserveStack's frame whole.
var reserveIndex int

// reserveStack: see stack.go. This Go version zeroes its frame on each call.
//
//go:noinline
func reserveStack() {
	var frame [checkStackReserve]byte
	frame[reserveIndex] = byte(reserveIndex)
	reserveSink = frame[reserveIndex]
}

// reserveSink is written by reserveStack so that its frame is used.
var reserveSink byte
