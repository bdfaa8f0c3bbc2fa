"""One error type for every refused input or failed precondition, and the entry-point wrapper."""

from __future__ import annotations

import os
import re
import reprlib
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, NoReturn

# What stops a command from outside besides Ctrl-C (SIGINT): `timeout` and a cancelled CI job send
# SIGTERM, a closed terminal SIGHUP.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


# How much of a refused value a message quotes: enough to recognise it, never all of it. A value can
# be a 10 MB argument, or a 440-byte YAML alias bomb whose full repr is gigabytes (aliases share one
# object, which a repr writes out every time it is referenced).
SHOWN_MAX = 80


def _bounded_repr() -> reprlib.Repr:
    """reprlib with a few items of each container, three levels deep and strings cut: its cost
    is bounded, whatever the size or nesting of the value."""
    bounded = reprlib.Repr()
    bounded.maxlevel = 3
    bounded.maxlist = bounded.maxtuple = bounded.maxset = bounded.maxfrozenset = bounded.maxdeque = 6
    bounded.maxdict = 4
    bounded.maxstring = bounded.maxlong = bounded.maxother = SHOWN_MAX
    bounded.fillvalue = "…"
    return bounded


_BOUNDED = _bounded_repr()


def shown(value: object) -> str:
    """A value as an error message quotes it: its repr (so a string is quoted and a line break in
    it shows as \\n), cut to SHOWN_MAX characters, '…' where something was left out. Every
    message that quotes user input goes through here."""
    return cut(_BOUNDED.repr(value))


def cut(text: str) -> str:
    """Text a message quotes as it is (names joined by commas), cut to SHOWN_MAX characters."""
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 1] + "…"


class HookError(Exception):
    """A refusal that names the field (answer, file or tool) and the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


# How a validator's refusal reads (questions/*.yml, includes/validators.jinja; tests/messages.py
# checks every one): Copier's "Validation error for question '<name>': ", then for each problem a
# short line starting with one of these that says what to answer (all a prompt shows), then lines
# that name the field and the reason.
VALIDATOR_LEADS = ("Answer ", "Leave ", "Add ", "Remove ")
VALIDATOR_REFUSAL = re.compile(r"Validation error for question '(?P<question>[^']+)': (?P<message>.*)", re.DOTALL)


def one_line(text: str) -> str:
    """A multi-line message (a YAML parser's, Copier's) as one line."""
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def copier_error(error: Exception) -> HookError:
    """A failed Copier render as one line. A validator's refusal keeps the lines that name the
    field and the reason (its lead lines only when nothing else is said), one clause per problem;
    anything else is Copier's text with its lines joined."""
    text = str(error).strip()
    refusal = VALIDATOR_REFUSAL.match(text)
    if not refusal:
        return HookError("copier update", f"{type(error).__name__}: {one_line(text)}")
    problems: list[list[str]] = []
    for line in filter(None, (line.strip() for line in refusal["message"].splitlines())):
        if line.startswith(VALIDATOR_LEADS) or not problems:
            problems.append([line])
        else:
            problems[-1].append(line)
    details = [" ".join(lines[1:]) for lines in problems if len(lines) > 1]
    return HookError(f"answer '{refusal['question']}'", "; ".join(details or [" ".join(lines[0] for lines in problems)]))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the command is, as Python raises KeyboardInterrupt for
    Ctrl-C: a transaction under way puts its repository back the same way (hooks/gitrepo.py)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextmanager
def uninterruptible() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP are ignored inside: a second Ctrl-C must not stop a restore half
    way. Ignored, not deferred, and inherited by the commands started inside (an ignored signal
    stays ignored across exec), so git restoring files is not stopped either. Signal dispositions
    belong to the main thread; elsewhere this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # Read before any is changed, so that a signal arriving half way through still finds every
    # disposition put back.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def run_main(main: Callable[[list[str]], int], argv: list[str] | None = None) -> NoReturn:
    """Run an entry point; a HookError becomes one clear line on stderr and exit status 2.
    SIGTERM and SIGHUP stop it as Ctrl-C does (exit status 128 + the signal's number), unless they
    were ignored when it started (nohup)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _terminate)
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
    except Terminated as error:
        print(f"error: interrupted ({error})", file=sys.stderr)
        code = 128 + error.signum
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        code = 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    sys.exit(code)
