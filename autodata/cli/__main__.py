"""``python -m autodata.cli``: the same as the ``autodata`` command."""
import sys

from autodata.cli import main

sys.exit(main())
