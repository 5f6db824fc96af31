package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a server process the bench started and measures.
type child struct {
	name string
	cmd  *exec.Cmd
	pid  int
	addr string // host:port it listens on
	log  string // its stderr
	done chan struct{}
}

// startChild runs argv and waits for a stdout line matching ready, whose
// first group is the listen address. stderr goes to a file in dir, so a
// server that writes one log line per request pays for a real write, as in
// production, without the bench reading it.
func startChild(ctx context.Context, dir, name string, argv, env []string, ready *regexp.Regexp) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, pid: cmd.Process.Pid, log: logPath, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var out strings.Builder
		for sc.Scan() {
			if m := ready.FindStringSubmatch(sc.Text()); m != nil && c.addr == "" {
				c.addr = m[1]
				found <- m[1]
				break
			}
			out.WriteString(sc.Text() + "\n")
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(c.done)
	}()
	select {
	case <-found:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("%s exited before listening; see %s", name, logPath)
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s did not start listening within 30s; see %s", name, logPath)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// stop asks the child to end, as an operator's SIGTERM would, then kills it.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// alive reports whether the process is still running.
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; it is 100 on
// every Linux architecture Go supports, and stdlib has no sysconf.
const clockTicks = 100

// cpuSeconds returns the user+system CPU time of process pid, all threads.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields resume after its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unparsable /proc/PID/stat times")
	}
	return float64(ut+st) / clockTicks, nil
}

// statusKiB returns a "Name:   123 kB" field of /proc/PID/status.
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func rssKiB(pid int) int64 {
	v, _ := statusKiB(pid, "VmRSS")
	return v
}

// machineCPU returns busy and total jiffies summed over all CPUs, from
// /proc/stat, so the report can show how much of the machine something other
// than the bench used (other engineers share these cores).
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:] {
		v, _ := strconv.ParseFloat(s, 64)
		if i >= 8 { // guest times are already counted in user
			break
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy / clockTicks, total / clockTicks
}

// buildGrokgate compiles cmd/grokgate from the module the bench runs in and
// returns the binary and the module's directory.
func buildGrokgate(ctx context.Context, dir string) (bin, modDir string, err error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", "", errors.New("the go command is not on PATH; build grokgate yourself and pass --grokgate PATH")
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", "", errors.New("not inside the grokgate module; run from the repository, or pass --grokgate PATH")
	}
	modDir = filepath.Dir(mod)
	bin = filepath.Join(dir, "grokgate")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/grokgate/grokgate/cmd/grokgate")
	cmd.Dir = modDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./cmd/grokgate: %w\n%s", err, b)
	}
	return bin, modDir, nil
}

// gitRevision names the checkout in dir, for builds made with
// -buildvcs=false, which carry no revision of their own.
func gitRevision(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!cmd/grokbench", ":!docs").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += " (with uncommitted changes)"
	}
	return rev
}

// cleanEnv is the environment for children: the bench's own, minus anything
// that could point grokgate at the real xAI API or change its config.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "XAI_") || strings.HasPrefix(kv, "GROKGATE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
