"""``python -m musicgen_app``: the command line (:mod:`musicgen_app.cli`)."""

import sys

from musicgen_app.cli import main

sys.exit(main())
