"""The subcommands of `bleepline`, one module per family; each ``run_*`` takes parsed arguments."""
