"""The course's grader: release, collect, autograde, score, report (``python -m autograder``).

Never installed for students (pyproject.toml packages only course_utils); run its commands
from the repository root. This folder is also the nbgrader course folder
(nbgrader_config.py, source/, release/, submitted/, ...).
"""
