"""Allow ``python -m denoisenet``."""

import sys

from denoisenet.cli import main

if __name__ == "__main__":
    sys.exit(main())
