"""``python -m tui``: the same as the ``ftc`` command."""

import sys

from tui.cli import main

sys.exit(main())
