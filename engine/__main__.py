"""``python -m engine SESSION_DIR``: the engine process entry point."""

import sys

from engine.server import main

sys.exit(main())
