//go:build amd64 || arm64

#include "textflag.h"
#include "funcdata.h"

// func reserveStack()
// A 32 KiB frame (checkStackReserve) that is never written: the prologue's
// stack check does the work.
TEXT ·reserveStack(SB), 0, $32768-0
	NO_LOCAL_POINTERS
	RET
