import sys

from kvdash.cli import main

sys.exit(main())
