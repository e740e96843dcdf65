package docs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Pages whose console blocks are run. A ```console block is a terminal
// session: lines starting with "$ " are commands (a trailing backslash
// continues one), the lines up to the next command are its output
// (stdout and stderr as a terminal shows them). In expected output a line
// that is only "…" stands for any number of lines, and "…" inside a line
// for any text. Blocks marked ```sh are shown, not run (they need a
// running server or a network).
var pages = []string{
	"../README.md",
	"catalog.md",
	"policy.md",
	"tokens.md",
	"configuration.md",
	"http-checks.md",
	"deploy.md",
	"rate-limits.md",
	"architecture.md",
	"api.md",
}

// session is one console block.
type session struct {
	page string
	line int // of the opening fence
	cmds []command
}

type command struct {
	line int
	text string
	want []string
}

func parsePage(t *testing.T, page string) []session {
	t.Helper()
	f, err := os.Open(page)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []session
	var cur *session
	sc := bufio.NewScanner(f)
	n := 0
	continued := false
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```console":
			cur = &session{page: page, line: n}
		case cur == nil:
		case strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case continued:
			c := &cur.cmds[len(cur.cmds)-1]
			c.text += "\n" + line
			continued = strings.HasSuffix(line, "\\")
		case strings.HasPrefix(line, "$ "):
			cur.cmds = append(cur.cmds, command{line: n, text: strings.TrimPrefix(line, "$ ")})
			continued = strings.HasSuffix(line, "\\")
		case len(cur.cmds) == 0:
			t.Errorf("%s:%d: console block output before any command", page, n)
		default:
			c := &cur.cmds[len(cur.cmds)-1]
			c.want = append(c.want, line)
		}
	}
	if cur != nil {
		t.Errorf("%s:%d: unterminated console block", page, cur.line)
	}
	return out
}

// clone is a directory that looks like a fresh clone after `make build`:
// the repository's files (linked) and bin/ccauthz built from them.
func clone(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build bin/ccauthz for the examples")
	}
	dir := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "bin", ".state", ".git":
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command(goBin, "build", "-o", filepath.Join(dir, "bin", "ccauthz"), "./cmd/ccauthz")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

const marker = "@@ccauthz-docs-example@@"

// TestConsoleExamples runs every console block of the pages.
func TestConsoleExamples(t *testing.T) {
	var sessions []session
	for _, p := range pages {
		sessions = append(sessions, parsePage(t, p)...)
	}
	if len(sessions) < 5 {
		t.Fatalf("only %d console blocks found: the pages lost their examples", len(sessions))
	}
	dir := clone(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not on PATH")
	}
	for _, s := range sessions {
		t.Run(fmt.Sprintf("%s:%d", filepath.Base(s.page), s.line), func(t *testing.T) {
			// Each block runs in one shell, in its own copy of the clone's
			// working directory state (a temp HOME, no network needed).
			// The marker line is echoed before each command; `(exit $st)`
			// restores the previous command's status, so `echo $?` works.
			script := strings.Builder{}
			script.WriteString("st=0\n")
			for i, c := range s.cmds {
				fmt.Fprintf(&script, "echo '%s %d'; (exit $st)\n%s\nst=$?\n", marker, i, c.text)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bash, "-c", script.String())
			// A child that outlives a killed shell must not keep the test
			// waiting on the output pipe.
			cmd.WaitDelay = 5 * time.Second
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1")
			out, _ := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("timed out; output:\n%s", out)
			}
			got := splitByMarker(string(out), len(s.cmds))
			for i, c := range s.cmds {
				if err := match(c.want, got[i]); err != nil {
					t.Errorf("%s:%d: $ %s\n%v\ngot:\n%s", s.page, c.line, c.text, err, strings.Join(got[i], "\n"))
				}
			}
			// Files the block wrote stay in this block.
			for _, p := range []string{"build", "signing-key.pem", "instance-jwks.json", "token.jwt", "chat.jwt", "issuers.yaml"} {
				_ = os.RemoveAll(filepath.Join(dir, p))
			}
		})
	}
}

// splitByMarker cuts the combined output into each command's lines.
func splitByMarker(out string, n int) [][]string {
	got := make([][]string, n)
	i := -1
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, marker+" "); ok {
			fmt.Sscan(rest, &i)
			continue
		}
		if i >= 0 && i < n {
			got[i] = append(got[i], line)
		}
	}
	return got
}

// match compares a command's expected lines with its output: trailing blank
// lines are ignored, "…" alone matches any lines, "…" within a line any text.
func match(want, got []string) error {
	want = trimBlank(want)
	got = trimBlank(got)
	if matchFrom(want, got) {
		return nil
	}
	return fmt.Errorf("output differs from the page; want:\n%s", strings.Join(want, "\n"))
}

func matchFrom(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if w := strings.TrimSpace(want[0]); w == "…" || w == "..." {
		for k := 0; k <= len(got); k++ {
			if matchFrom(want[1:], got[k:]) {
				return true
			}
		}
		return false
	}
	if len(got) == 0 || !lineMatches(want[0], got[0]) {
		return false
	}
	return matchFrom(want[1:], got[1:])
}

func lineMatches(want, got string) bool {
	want, got = strings.TrimRight(want, " "), strings.TrimRight(got, " ")
	if !strings.Contains(want, "…") {
		return want == got
	}
	parts := strings.Split(want, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	return lines
}

// TestNoMachinePaths: examples run from a clone, so no example (fenced
// block) may send the reader to files beside the repository or to tools a
// Debian base lacks.
func TestNoMachinePaths(t *testing.T) {
	// The folder the clone sits in, as this machine spells it: an example
	// naming it only works here.
	beside, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bad := []string{"../shared", "uuidgen", beside + string(filepath.Separator)}
	for _, p := range pages {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fenced := false
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
				continue
			}
			if !fenced {
				continue
			}
			// CustomersDot's tokens carry iss without the trailing slash
			// its discovery document has: an issuer copied with the slash
			// rejects every one of them (docs/tokens.md).
			if regexp.MustCompile(`issuer: *"?https://customers\.gitlab\.com/`).MatchString(line) {
				t.Errorf("%s:%d: CustomersDot issuer with a trailing slash: %s", p, i+1, line)
			}
			for _, b := range bad {
				if strings.Contains(line, b) {
					t.Errorf("%s:%d: mentions %q: %s", p, i+1, b, line)
				}
			}
		}
	}
}
