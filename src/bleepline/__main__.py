"""`python -m bleepline` runs the command line."""

import sys

from bleepline.cli import main

sys.exit(main())
