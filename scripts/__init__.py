"""Command-line programs users run (train, watch, evaluate, benchmark, supervised) and the run logger."""
