import sys

from mstgansr_library.cli import main

sys.exit(main())
