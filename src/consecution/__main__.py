import sys

from consecution.cli import main

sys.exit(main())
