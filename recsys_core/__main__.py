"""``python -m recsys_core``."""

import sys

from recsys_core.cli.main import main

sys.exit(main())
