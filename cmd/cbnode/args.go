package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed rewrites args so flags may follow positional arguments
// ("cbnode join lab --token T"): urfave/cli v2 stops parsing flags at the
// first positional argument. It finds the (sub)command, then moves that
// command's flags, with their values, before its positional arguments.
//
// Shell completion requests ("... --generate-bash-completion" last) are left
// alone: moving their positional words behind "--" would turn off
// completion and run the command instead.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	cmds := app.Commands
	var cmd *cli.Command
	// Walk the command path: leading words naming (sub)commands; global
	// flags before the command stay where they are.
	for len(rest) > 0 {
		var next *cli.Command
		if !strings.HasPrefix(rest[0], "-") {
			for _, c := range cmds {
				if c.HasName(rest[0]) {
					next = c
					break
				}
			}
		}
		if next == nil {
			break
		}
		out = append(out, rest[0])
		rest = rest[1:]
		cmd, cmds = next, next.Subcommands
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return append(out, rest...)
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		// "-c1": a one-letter value flag with its value attached.
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && !strings.Contains(a, "=") && takesValue[a[1:2]] && !takesValueKnown(takesValue, name) {
			flags = append(flags, a[:2], a[2:])
			continue
		}
		flags = append(flags, a)
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] {
			if i+1 == len(rest) {
				// A value flag at the very end has no value: leave it last,
				// so the flag parser says "flag needs an argument" instead of
				// taking the "--" below (or a positional argument) as its value.
				return append(out, flags...)
			}
			flags = append(flags, rest[i+1])
			i++
		}
	}
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// takesValueKnown reports whether name is itself a known flag (so "-ab" is
// flag "ab", not "-a b").
func takesValueKnown(known map[string]bool, name string) bool {
	_, ok := known[name]
	return ok
}
