"""Sub-commands of the `liverplan` command, one module each (see liverplan/cli.py)."""
