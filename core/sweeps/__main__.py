"""``python -m core.sweeps``: the sweep command on its own (same as ``python -m core sweep``)."""

import sys

from core.sweeps.cli import main

sys.exit(main())
