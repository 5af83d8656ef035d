package localpg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

const installHint = "install PostgreSQL's server package: apt-get install -y postgresql"

// Available reports whether a PostgreSQL server can be started here: the server binaries
// exist (on PATH, in `pg_config --bindir`, or in Debian's /usr/lib/postgresql/*/bin) and,
// when this process is root, the unprivileged postgres user to run them as exists.
func Available() error {
	if len(binDirs()) == 0 {
		return errors.New("localpg: PostgreSQL server binaries (initdb, postgres) not found on PATH, in `pg_config --bindir` or in /usr/lib/postgresql/*/bin: " + installHint)
	}
	_, err := serverAccount()
	return err
}

// binDirs returns the directories that hold initdb and postgres, best first: PATH,
// pg_config's bindir, then /usr/lib/postgresql/*/bin from the highest version down.
func binDirs() []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(d string) {
		if d == "" || seen[d] {
			return
		}
		seen[d] = true
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			dirs = append(dirs, d)
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		add(filepath.Dir(p))
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		add(strings.TrimSpace(string(out)))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(debian, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(debian[j])), filepath.Base(filepath.Dir(debian[i])))
	})
	for _, d := range debian {
		add(d)
	}
	return dirs
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// versionLess compares dotted version numbers ("9.6" < "15").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// majorVersion returns the major version of the server in dir as PostgreSQL writes it to
// PG_VERSION ("15", "9.6").
func majorVersion(dir string) (string, error) {
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", filepath.Join(dir, "postgres"), err)
	}
	// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
	s := string(out)
	if i := strings.Index(s, ")"); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return "", fmt.Errorf("cannot parse %q", out)
	}
	parts := strings.FieldsFunc(f[0], func(r rune) bool { return r == '.' || r < '0' || r > '9' })
	if len(parts) == 0 {
		return "", fmt.Errorf("cannot parse %q", out)
	}
	if n, _ := strconv.Atoi(parts[0]); n < 10 && len(parts) > 1 {
		return parts[0] + "." + parts[1], nil
	}
	return parts[0], nil
}

// account is the OS user the server runs as: this process's own, or postgres when this
// process is root (PostgreSQL refuses to run as root).
type account struct {
	name     string
	uid, gid uint32
	groups   []uint32
	cred     *syscall.Credential // nil: run as this process's user
}

func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return &account{name: "current user", uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("localpg: PostgreSQL refuses to run as root and there is no unprivileged postgres user to run it as (the postgresql package creates it): " + installHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("localpg: user postgres has a non-numeric uid/gid %s/%s", u.Uid, u.Gid)
	}
	a := &account{name: "postgres", uid: uint32(uid), gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				a.groups = append(a.groups, uint32(g))
			}
		}
	}
	a.cred = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
	return a, nil
}

func (a *account) inGroup(gid uint32) bool {
	if gid == a.gid {
		return true
	}
	for _, g := range a.groups {
		if g == gid {
			return true
		}
	}
	return false
}

// canEnter reports, from the permission bits, whether the account may traverse every
// directory from / down to dir (ACLs are not consulted).
func (a *account) canEnter(dir string) error {
	if a.uid == 0 {
		return nil
	}
	dir = filepath.Clean(dir)
	var path []string
	for d := dir; ; d = filepath.Dir(d) {
		path = append(path, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(path) - 1; i >= 0; i-- {
		d := path[i]
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := fi.Mode().Perm()
		var ok2 bool
		switch {
		case st.Uid == a.uid:
			ok2 = perm&0o100 != 0
		case a.inGroup(st.Gid):
			ok2 = perm&0o010 != 0
		default:
			ok2 = perm&0o001 != 0
		}
		if !ok2 {
			return fmt.Errorf("localpg: PostgreSQL runs as the unprivileged user %s (it refuses to run as root), which cannot enter %s (mode %v, owner uid %d): put the data directory somewhere it can reach, or make the directory traversable (chmod o+x %s)", a.name, d, perm, st.Uid, d)
		}
	}
	return nil
}

// own gives path to the account when the server runs as another user.
func (a *account) own(path string) error {
	if a.cred == nil {
		return nil
	}
	return os.Chown(path, int(a.uid), int(a.gid))
}
