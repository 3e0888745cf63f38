"""`python -m aggregator` runs the `aggregate` command."""

import sys

from aggregator.cli import main

sys.exit(main())
