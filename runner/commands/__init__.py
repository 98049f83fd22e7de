"""The commands, one module per verb: load the profile (its rules compiled once), take the
census and compile the plan where the verb needs one, then explain it or execute it. Each
verb returns its exit code; runner.cli only parses the command line and calls it."""
