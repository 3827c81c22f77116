package remote

import (
	"fmt"
	"strings"

	"github.com/lian-build/action/internal/nosync"
)

// NoSyncPath is where a runner machine keeps NoSyncProgram; whoever starts
// buildkitd writes it there first (the user-data, the image's boot script,
// the runner script), so it is never older than the code that runs it.
const NoSyncPath = "/run/lian-build/nosync.py"

// NoSyncProgram is a python3 program that execs its arguments with their
// sync calls made no-ops (package nosync's filter for the machine, handed
// to prctl(PR_SET_SECCOMP)): a runner machine's buildkitd, as the local
// provider starts it. Stock cloud images have python3 (cloud-init is
// written in it). Where the filter cannot be installed — no python3, an
// unknown machine, seccomp refused — buildkitd starts as it is and its log
// says why.
func NoSyncProgram() string {
	var filters strings.Builder
	for _, m := range []string{"x86_64", "aarch64"} {
		h, err := nosync.Hex(m)
		if err != nil {
			panic(err) // both are in nosync's table
		}
		fmt.Fprintf(&filters, "%q: %q, ", m, h)
	}
	return `import ctypes, os, platform, sys
FILTERS = {` + strings.TrimSuffix(filters.String(), ", ") + `}
try:
    code = bytes.fromhex(FILTERS[platform.machine()])
    buf = ctypes.create_string_buffer(code, len(code))
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = Prog(len(code) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER; root needs no no_new_privs
    if libc.prctl(ctypes.c_int(22), ctypes.c_ulong(2), ctypes.byref(prog), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
except Exception as e:
    print("lian-build: %s keeps its fsyncs: %s" % (sys.argv[1], e), file=sys.stderr, flush=True)
os.execv(sys.argv[1], sys.argv[1:])
`
}

// noSyncStart is the shell that execs "$@" through NoSyncProgram when the
// machine has python3 and the program is in place, else as it is.
const noSyncStart = `w=; command -v python3 >/dev/null 2>&1 && [ -f ` + NoSyncPath + ` ] && w="python3 ` + NoSyncPath + `"; exec $w`
