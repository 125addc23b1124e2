import sys

from .stack import main

sys.exit(main())
