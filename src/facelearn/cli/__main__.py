"""``python -m facelearn.cli`` (what ``torchrun -m facelearn.cli train …`` runs)."""

import sys

from . import main

sys.exit(main())
