"""Wrong variants of the fixture assignment (tests/fixtures/00_fixture): grade_id -> cell source."""

WRONG = {
    "mean_of": (
        "def mean_of(xs):\n"
        "    \"\"\"The mean of a non-empty list of numbers.\"\"\"\n"
        "    return sum(xs) / (len(xs) + 1)  # off by one in the count\n"
    ),
}
