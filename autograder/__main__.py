"""``python -m autograder COMMAND ...``: the grader's command line (cli.py)."""
import sys

from .cli import main

sys.modules.setdefault("rfc3987_syntax", None)   # see course.SKIP_SLOW_IMPORTS
sys.exit(main())
