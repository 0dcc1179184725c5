"""pytest set-up for tests/ and bench/, loaded before any test module imports numpy."""

import bleepline  # noqa: F401 - importing it first limits BLAS threads before numpy loads (see there)
