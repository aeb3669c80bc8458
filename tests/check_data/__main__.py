"""``python -m tests.check_data [notebook ...]``: write the stored tables of the visible
checks (every notebook's by default; the names: simclr, moco, mae, dino, segments)."""
import sys

from . import NOTEBOOKS, write

unknown = [name for name in sys.argv[1:] if name not in NOTEBOOKS]
if unknown:
    sys.exit(f"unknown notebook {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)}")
for notebook in sys.argv[1:] or NOTEBOOKS:
    print(f"wrote {write(notebook)}")
