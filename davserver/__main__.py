"""``python -m davserver``."""

import sys

from .cli import main

sys.exit(main())
