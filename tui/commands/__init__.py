"""The ``ftc`` subcommands that print for a person, one module per job; tui/cli.py builds the parser."""
