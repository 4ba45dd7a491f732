"""``python -m lstmkit.cli ...`` (what ``torchrun ... -m lstmkit.cli train CONFIG`` starts)."""

import sys

from lstmkit.cli import main

sys.exit(main())
