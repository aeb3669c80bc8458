"""The stored tables of the visible checks, one generated module per notebook (see
``course_utils.checks``)."""
