"""``python -m dqnfast.train``: the same as ``dqnfast train``."""
import sys

from .cli import main

sys.exit(main())
