"""Developer tools run as scripts (tools/make_fixtures.py, ...); a package so that bench/ can import
make_fixtures' helpers as ``tools.make_fixtures`` (the development set, bench/devset.py)."""
