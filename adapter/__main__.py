"""``python -m adapter``: the adapter's command line."""

from __future__ import annotations

import sys

from adapter.cli import main

sys.exit(main())
