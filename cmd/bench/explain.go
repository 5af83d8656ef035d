package main

// -explain: where a scenario's time goes. For the stack the bench starts, it reports the
// CPU each process spent per request (the load generator, the server, PostgreSQL with
// its backends) and, from pg_stat_statements, the statements each request cost.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// stack is what the bench knows of the stack it started (zero with -target).
type stack struct {
	serverPID, pgPID int
	dbURL            string
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux the
// bench runs on (it is fixed by the kernel ABI, not by CONFIG_HZ).
const clockTick = 100

// cpuTimes reads utime+stime of pid, plus its reaped children's when children is set.
func cpuTimes(pid int, children bool) (time.Duration, int, bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields start after the last ")".
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, 0, false
	}
	// f[0] is field 3 (state): ppid is f[1], utime f[11], stime f[12], cutime f[13], cstime f[14].
	ppid, _ := strconv.Atoi(f[1])
	n := 0
	for i, idx := range []int{11, 12, 13, 14} {
		if i >= 2 && !children {
			break
		}
		v, _ := strconv.Atoi(f[idx])
		n += v
	}
	return time.Duration(n) * time.Second / clockTick, ppid, true
}

type cpuSample struct{ bench, server, pg time.Duration }

// sampleCPU reads the CPU time used so far by the bench itself, the server and
// PostgreSQL: the postmaster with its reaped backends plus every live child.
func (s stack) sampleCPU() cpuSample {
	var c cpuSample
	c.bench, _, _ = cpuTimes(os.Getpid(), false)
	if s.serverPID != 0 {
		c.server, _, _ = cpuTimes(s.serverPID, true)
	}
	if s.pgPID == 0 {
		return c
	}
	c.pg, _, _ = cpuTimes(s.pgPID, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == s.pgPID {
			continue
		}
		if t, ppid, ok := cpuTimes(pid, false); ok && ppid == s.pgPID {
			c.pg += t
		}
	}
	return c
}

// explainer measures one scenario's measured run.
type explainer struct {
	st     stack
	db     *pgx.Conn
	cpu    cpuSample
	start  time.Time
	commit int64
	rollbk int64
}

func newExplainer(ctx context.Context, st stack) (*explainer, error) {
	e := &explainer{st: st}
	if st.dbURL == "" {
		return e, nil
	}
	db, err := pgx.Connect(ctx, st.dbURL)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		db.Close(ctx)
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	e.db = db
	return e, nil
}

func (e *explainer) close() {
	if e.db != nil {
		e.db.Close(context.Background())
	}
}

func (e *explainer) begin(ctx context.Context) error {
	if e.db != nil {
		if _, err := e.db.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
			return err
		}
		if err := e.db.QueryRow(ctx, `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).
			Scan(&e.commit, &e.rollbk); err != nil {
			return err
		}
	}
	e.cpu, e.start = e.st.sampleCPU(), time.Now()
	return nil
}

// report prints, per completed request, the CPU of each process and the statements.
func (e *explainer) report(ctx context.Context, w io.Writer, name string, requests uint64) error {
	end, elapsed := e.st.sampleCPU(), time.Since(e.start)
	if requests == 0 {
		return nil
	}
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000/float64(requests))
	}
	b, s, p := end.bench-e.cpu.bench, end.server-e.cpu.server, end.pg-e.cpu.pg
	fmt.Fprintf(w, "\n%s: %d requests in %s; CPU per request: bench %s, server %s, postgres %s (all: %s; %.2f cores busy)\n",
		name, requests, elapsed.Round(time.Millisecond), per(b), per(s), per(p), per(b+s+p), (b+s+p).Seconds()/elapsed.Seconds())
	if e.db == nil {
		return nil
	}
	var commit, rollbk int64
	if err := e.db.QueryRow(ctx, `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).
		Scan(&commit, &rollbk); err != nil {
		return err
	}
	fmt.Fprintf(w, "transactions per request: %.2f committed, %.2f rolled back\n",
		float64(commit-e.commit)/float64(requests), float64(rollbk-e.rollbk)/float64(requests))
	rows, err := e.db.Query(ctx, `
		SELECT calls, total_exec_time, total_plan_time, plans, rows, regexp_replace(query, '\s+', ' ', 'g')
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC`)
	if err != nil {
		return err
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "calls/req\texec ms/req\tmean ms\tplans/call\tplan ms/req\trows/call\tstatement")
	var calls int64
	var total, planned float64
	shown := 0
	for rows.Next() {
		var n, plans, nrows int64
		var t, pt float64
		var q string
		if err := rows.Scan(&n, &t, &pt, &plans, &nrows, &q); err != nil {
			return err
		}
		calls += n
		total += t
		planned += pt
		if shown < 25 {
			shown++
			if len(q) > 110 {
				q = q[:110] + "..."
			}
			fmt.Fprintf(tw, "%.2f\t%.3f\t%.3f\t%.2f\t%.3f\t%.1f\t%s\n", float64(n)/float64(requests), t/float64(requests),
				t/float64(max(n, 1)), float64(plans)/float64(max(n, 1)), pt/float64(requests), float64(nrows)/float64(max(n, 1)), q)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	fmt.Fprintf(tw, "%.2f\t%.3f\t\t\t%.3f\t\tall statements (the database's own execution and planning time, under load partly waiting for a core; the rest of its CPU is parsing, protocol and commits)\n",
		float64(calls)/float64(requests), total/float64(requests), planned/float64(requests))
	return tw.Flush()
}
