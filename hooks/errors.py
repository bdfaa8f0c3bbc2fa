"""One error type for every refused input or failed precondition, and the entry-point wrapper."""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn


class HookError(Exception):
    """A refusal that names the field (answer, file or tool) and the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def run_main(main: Callable[[list[str]], int], argv: list[str] | None = None) -> NoReturn:
    """Run an entry point; a HookError becomes one clear line on stderr and exit status 2."""
    try:
        code = main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # here, so that a reader gone early is handled below, not at exit
    except BrokenPipeError:
        # The reader of stdout went away (`… | head`): stop quietly. Every command prints after its
        # change is complete (or put back), so nothing is left half-done. Python flushes stdout
        # again at exit: it goes to /dev/null, not to a closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    except HookError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        code = 130
    sys.exit(code)
