package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/admin"
)

// usageCmd prints the usage ledger's aggregates, the same as
// GET /admin/v1/usage, read straight from the database.
func usageCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("usage", getenv, stderr)
	var db, groupBy, from, to, spoolDir string
	var asJSON bool
	s.String(&db, "db", "GROKGATE_DB", "grokgate.db", dbHelp)
	s.String(&spoolDir, "spool-dir", "GROKGATE_SPOOL_DIR", "", spoolDirHelp)
	s.fs.StringVar(&groupBy, "group-by", "key", "key, model or day (UTC)")
	s.fs.StringVar(&from, "from", "", "first date (2026-11-01) or RFC 3339 time to count, inclusive")
	s.fs.StringVar(&to, "to", "", "last date to count (inclusive), or RFC 3339 time (exclusive)")
	s.fs.BoolVar(&asJSON, "json", false, "print the admin API's JSON")
	if err := s.parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	q, err := admin.ParseUsageQuery(groupBy, from, to)
	if err != nil {
		var pe *admin.ParamError
		if errors.As(err, &pe) {
			// The message names the API parameter; here it is a flag.
			err = errors.New(strings.NewReplacer("'group_by'", "--group-by", "'from'", "--from", "'to'", "--to").Replace(pe.Msg))
		}
		s.errs = append(s.errs, err)
	}
	if err := s.err(); err != nil {
		return err
	}
	st, err := openStore(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	rows, err := st.UsageSummary(ctx, q)
	if err != nil {
		return err
	}
	var names map[string]string
	if q.GroupBy == grokgate.GroupByKey {
		list, err := st.ListKeys(ctx)
		if err != nil {
			return err
		}
		names = admin.KeyNames(list)
	}
	// The spool is read without taking it: a server may own it.
	var sp admin.SpoolCounts
	var dirs []string
	if sp.Pending, sp.DeadLetters, dirs, err = spoolCounts(db, spoolDir); err != nil {
		return err
	}
	if asJSON {
		_, err := stdout.Write(admin.EncodeUsage(q, rows, names, &sp))
		return err
	}
	if err := printUsage(stdout, q, rows, names); err != nil {
		return err
	}
	if sp.Pending > 0 || sp.DeadLetters > 0 {
		for i, d := range dirs {
			dirs[i], _ = filepath.Abs(d)
		}
		fmt.Fprintf(stdout, "\nNot in the figures above: %d usage records wait in the spool for the database (a server replays them once it answers), %d refused as invalid are dead letters (dead-letter.jsonl), in %s.\n",
			sp.Pending, sp.DeadLetters, strings.Join(dirs, ", "))
	}
	return nil
}

func printUsage(w io.Writer, q grokgate.UsageQuery, rows []grokgate.UsageTotals, names map[string]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := strings.ToUpper(q.GroupBy.Field())
	if names != nil {
		head += "\tNAME"
	}
	fmt.Fprintln(tw, head+"\tREQUESTS\tCOMPLETED\tESTIMATED\tPROMPT\tCOMPLETION\tREASONING\tCACHED\tTOTAL\tTOOL CALLS\tCOST (USD)\t")
	var sum grokgate.UsageTotals
	line := func(group, name string, u grokgate.UsageTotals) {
		cols := []string{group}
		if names != nil {
			cols = append(cols, name)
		}
		for _, n := range []int64{u.Requests, u.Completed, u.Estimated, u.PromptTokens, u.CompletionTokens,
			u.ReasoningTokens, u.CachedTokens, u.TotalTokens(), u.ToolCalls.Total()} {
			cols = append(cols, strconv.FormatInt(n, 10))
		}
		cols = append(cols, usd(u.CostTicks))
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	for _, u := range rows {
		line(u.Group, names[u.Group], u)
		sum.Requests += u.Requests
		sum.Completed += u.Completed
		sum.Estimated += u.Estimated
		sum.PromptTokens += u.PromptTokens
		sum.CompletionTokens += u.CompletionTokens
		sum.ReasoningTokens += u.ReasoningTokens
		sum.CachedTokens += u.CachedTokens
		sum.CostTicks += u.CostTicks
		sum.ToolCalls = sum.ToolCalls.Add(u.ToolCalls)
	}
	line("TOTAL", "", sum)
	if err := tw.Flush(); err != nil {
		return err
	}
	if sum.ToolCalls.Total() == 0 {
		return nil
	}
	return printToolCalls(w, q, rows, sum)
}

// printToolCalls breaks the server-side tool calls down by kind, for the
// groups that made any; the main table has no room for six more columns.
func printToolCalls(w io.Writer, q grokgate.UsageQuery, rows []grokgate.UsageTotals, sum grokgate.UsageTotals) error {
	fmt.Fprintln(w, "\nServer-side tool calls:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{strings.ToUpper(q.GroupBy.Field())}
	for _, c := range admin.ToolCallCounts(sum.ToolCalls) {
		head = append(head, strings.ToUpper(strings.ReplaceAll(strings.TrimSuffix(c.Name, "_calls"), "_", " ")))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	line := func(group string, t grokgate.ToolCalls) {
		cols := []string{group}
		for _, c := range admin.ToolCallCounts(t) {
			cols = append(cols, strconv.FormatInt(c.N, 10))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	for _, u := range rows {
		if u.ToolCalls.Total() > 0 {
			line(u.Group, u.ToolCalls)
		}
	}
	line("TOTAL", sum.ToolCalls)
	return tw.Flush()
}

// usd renders cost ticks (10^10 per dollar) as dollars to the
// hundred-thousandth of a cent, without float rounding.
func usd(ticks int64) string {
	sign := ""
	if ticks < 0 {
		sign, ticks = "-", -ticks
	}
	return fmt.Sprintf("%s%d.%07d", sign, ticks/1e10, (ticks%1e10)/1e3)
}
