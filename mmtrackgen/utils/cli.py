"""How the command-line tools report what a user must fix: one line, exit code 2."""
import sys
from typing import NoReturn


def one_line(error: BaseException) -> str:
    """``str(error)`` on one line (some messages, e.g. UnsafeCheckpointError's, span several)."""
    return ' '.join(line.strip() for line in str(error).splitlines() if line.strip())


def exit_with_error(error: BaseException) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with code 2 (no traceback)."""
    print(f'error: {one_line(error)}', file=sys.stderr)
    sys.exit(2)
