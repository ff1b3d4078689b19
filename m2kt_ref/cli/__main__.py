"""``python -m m2kt_ref.cli``: the ``m2kt`` command without its console script (e.g. torchrun)."""

import sys

from m2kt_ref.cli import main

sys.exit(main())
