"""The one error class for user mistakes, and the helpers that word what rnnkit tells its users.

Library code raises :class:`RnnkitError` when the caller passed something wrong; the CLI turns it into
``error: <message>`` on stderr and exit code 2. Bugs stay ordinary exceptions with tracebacks.
"""


class RnnkitError(ValueError):
    """A user mistake, described in one sentence: what was wrong, the value given, and what to do."""


def first_line(error: BaseException) -> str:
    """A library's exception in one line, to quote inside an :class:`RnnkitError` (its class name if it is silent)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def a_task(task: str) -> str:
    """``task`` with its article as read aloud: ``an lm``, ``an asr``, ``a forecast``."""
    return f"{'an' if task[:1] in 'aeiou' or task == 'lm' else 'a'} {task}"


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is one: ``1 step``, ``3,000 steps``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
