"""Helpers shared by the test modules (importable: pytest puts tests/ on sys.path)."""
import pytest


def fails_with(check, fn, *words):
    """Run ``check(fn)``; it must raise AssertionError mentioning every word."""
    with pytest.raises(AssertionError) as info:
        check(fn)
    message = str(info.value).lower()
    for word in words:
        assert word.lower() in message, f"{word!r} not in: {info.value}"
    return message
