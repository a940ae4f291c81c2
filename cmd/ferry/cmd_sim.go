package main

import (
	"context"
	"fmt"
	"strings"

	"ferry/node"
	"ferry/sim"
)

func cmdSim(ctx context.Context, e *env, args []string) error {
	fs := flags("sim", e)
	scenario := fs.String("scenario", "small", "the scenario to simulate: "+scenarioNames())
	modes := fs.String("mode", "ferry,epidemic,direct", "routing modes to compare, comma-separated: ferry, epidemic, epidemic-plain, direct")
	dir := fs.String("dir", "", "folder for the simulated nodes and sticks (default: a temporary folder; /dev/shm is faster)")
	jsonOut := fs.Bool("json", false, "print the results as JSON")
	quiet := fs.Bool("quiet", false, "no line per simulated day")
	copies := fs.Int("copies", 0, "copies of a bulky bundle its source hands on under ferry's policy (default 4)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	sc, err := sim.ScenarioByName(*scenario)
	if err != nil {
		return usageError("sim: %v", err)
	}
	var rs []*sim.Result
	for _, m := range strings.Split(*modes, ",") {
		mode := node.RoutingMode(strings.TrimSpace(m))
		switch mode {
		case node.RouteFerry, node.RouteEpidemic, node.RouteEpidemicPlain, node.RouteDirect:
		default:
			return usageError("sim: unknown mode %q (ferry, epidemic, epidemic-plain, direct)", m)
		}
		o := sim.RunOptions{Dir: *dir, Copies: *copies}
		if !*quiet && !*jsonOut {
			o.Log = e.stderr
		}
		fmt.Fprintf(e.stderr, "simulating %s (%s) under %s routing\n", sc.Name, sc.About, mode)
		r, err := sim.Run(ctx, sc, mode, o)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	if *jsonOut {
		return printJSON(e.stdout, rs)
	}
	sim.WriteTable(e.stdout, rs)
	fmt.Fprintln(e.stdout)
	sim.WriteFlows(e.stdout, rs)
	return nil
}

func scenarioNames() string {
	var names []string
	for _, s := range sim.Scenarios() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}
