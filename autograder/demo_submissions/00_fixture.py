"""Wrong variants of the fixture assignment (tests/fixtures/00_fixture): grade_id -> cell source."""

WRONG = {
    "mean_of": (
        "def mean_of(xs):\n"
        "    \"\"\"The mean of a non-empty list of numbers.\"\"\"\n"
        "    return sum(xs) / (len(xs) + 1)  # off by one in the count\n"
    ),
}

# Correct answers written differently from the master: each earns full marks.
CORRECT = {
    "add": (
        "def add(a, b):\n"
        "    \"\"\"Return a + b.\"\"\"\n"
        "    return sum((a, b))\n"
    ),
    "mean_of": (
        "def mean_of(xs):\n"
        "    \"\"\"The mean of a non-empty list of numbers.\"\"\"\n"
        "    total = 0.0\n"
        "    for x in xs:\n"
        "        total += x\n"
        "    return total / len(xs)\n"
    ),
}
