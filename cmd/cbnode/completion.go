package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shell completion asks the binary itself: urfave/cli (EnableBashCompletion)
// answers "cbnode WORDS... --generate-bash-completion" with the subcommands
// of the command named by WORDS, or with its flags when the last word starts
// with "-". The scripts only relay the words typed so far. %[1]s is the
// program name.
const (
	bashCompletion = `# bash completion for %[1]s
# load it with:  source <(%[1]s completion bash)
# or install it: %[1]s completion bash > /etc/bash_completion.d/%[1]s
_%[1]s_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}" opts
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _%[1]s_complete %[1]s
`
	zshCompletion = `#compdef %[1]s
# zsh completion for %[1]s
# load it with:  source <(%[1]s completion zsh)
# or install it as _%[1]s in a directory of $fpath
_%[1]s() {
  local -a opts
  local cur=${words[CURRENT]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[1,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[1,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n "${opts[1]}" ]]; then
    compadd -a opts
  else
    _files
  fi
}
if [[ "$funcstack[1]" == "_%[1]s" ]]; then
  _%[1]s "$@"
else
  compdef _%[1]s %[1]s
fi
`
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `Examples:
  source <(cbnode completion bash)                   # this bash session
  cbnode completion bash > /etc/bash_completion.d/cbnode
  cbnode completion zsh > "${fpath[1]}/_cbnode"
  cbnode completion fish > ~/.config/fish/completions/cbnode.fish`,
		Action: func(c *cli.Context) error {
			shell, err := oneArg(c, "shell (bash, zsh or fish)")
			if err != nil {
				return err
			}
			name := c.App.Name
			switch strings.ToLower(shell) {
			case "bash":
				_, err = fmt.Fprintf(c.App.Writer, bashCompletion, name)
			case "zsh":
				_, err = fmt.Fprintf(c.App.Writer, zshCompletion, name)
			case "fish":
				var s string
				if s, err = c.App.ToFishCompletion(); err == nil {
					_, err = fmt.Fprint(c.App.Writer, s)
				}
			default:
				return fmt.Errorf("completion: no script for shell %q: want bash, zsh or fish", shell)
			}
			return err
		},
	}
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the manual page (roff)",
		Description: `Examples:
  cbnode man | man -l -
  cbnode man > /usr/local/share/man/man1/cbnode.1`,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("man: takes no arguments (see '%s --help')", c.Command.HelpName)
			}
			s, err := c.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("man page: %w", err)
			}
			_, err = fmt.Fprint(c.App.Writer, s)
			return err
		},
	}
}
