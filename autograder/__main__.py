"""``python -m autograder COMMAND ...``: the grader's command line (see autograder/README.md)."""
import sys

from .course import main

sys.exit(main())
