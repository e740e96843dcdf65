package server

// A check's stack. OPA's evaluation recurses deeply: a cold check needs
// tens of KiB of goroutine stack, and a goroutine starts with 2 KiB. The
// runtime grows a stack by copying it, walking every frame to adjust its
// pointers, so a check that grows its stack in the middle of the evaluation
// pays one copy of a deep stack per doubling. Measured on the realistic mix
// at capacity (docs/reliability.md "Stack growth"), runtime.newstack and
// copystack took 11 % of ccauthz's CPU: grpc-go runs a check on a fresh
// goroutine whenever its stream workers are all busy, and the garbage
// collector halves the stacks of idle workers.
//
// reserveStack, called where a check starts, grows the stack once, to the
// size a check needs, while it is still shallow (a handful of frames to
// copy); on a goroutine whose stack is already that large it costs a call.

// checkStackReserve is the stack a check is given up front. 32 KiB of frame
// makes the runtime allocate a 64 KiB stack, in which nearly every check of
// the realistic mix ran without growing it again (newstack 11 % → 0.6 % of
// the CPU).
const checkStackReserve = 32 << 10

// reserveStack has a checkStackReserve-byte frame: its prologue makes the
// runtime grow the calling goroutine's stack to fit it, if it is smaller.
// On amd64 and arm64 it is written in assembly (stack_asm.s), a frame that
// is never written: a Go frame would be zeroed on every call, which cost
// 5.5 % of the CPU of the realistic mix. Elsewhere it is Go
// (stack_other.go).
