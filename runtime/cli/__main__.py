"""``python -m seq2seq_edge.cli``: the ``s2s`` command."""

import sys

from . import main

sys.exit(main())
