"""Run a Copier task's script where Copier cannot cut its rollback short.

    python hooks/shield.py hooks/onboard.py --platform=… …

Copier runs a task with Python's subprocess.run: on Ctrl-C it waits 0.25 s for the task, then
kills it (SIGKILL), which would stop a rollback half way (hooks/gitrepo.py all_or_nothing) and
leave the repository it was putting back half-changed. So this process, the task Copier knows,
runs the script in a child in a session of its own, out of the terminal's process group and out
of reach of that kill, and
- forwards Ctrl-C, SIGTERM and SIGHUP to the child's process group, as a terminal would;
- exits with the child's exit status;
- when it is killed itself, the child notices (the pipe only this process can write to reaches
  its end) and interrupts itself as Ctrl-C would, unless it was interrupted already: its
  transaction is then put back to the end, or was complete.
"""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks.errors import STOP_SIGNALS  # noqa: E402

CHILD = "--shielded-child"


def run_shielded(script: str, args: list[str]) -> int:
    """The parent: the script's exit status (128 + N when a signal N ended it)."""
    read_end, write_end = os.pipe()  # write_end stays here alone: the child is not given it
    child = subprocess.Popen([sys.executable, __file__, CHILD, str(read_end), script, *args], pass_fds=(read_end,),
                             start_new_session=True, stdin=subprocess.DEVNULL)
    os.close(read_end)
    told = False

    def forward(signum: int, frame: object) -> None:
        nonlocal told
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:  # it has just finished
            return
        if not told:  # once; on Ctrl-C, Copier's own message and kill follow within 0.25 s
            told = True
            try:
                print(f"interrupted: {Path(script).name} puts back what it changed, then says so "
                      "(possibly after Copier has stopped)", file=sys.stderr, flush=True)
            except OSError:  # a closed terminal (SIGHUP)
                pass

    for sig in (signal.SIGINT, *STOP_SIGNALS):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup: stays ignored, as in the child
            signal.signal(sig, forward)
    code = child.wait()
    return code if code >= 0 else 128 - code


def run_child(read_end: int, script: str, args: list[str]) -> None:
    """The child: the script as its __main__, with a watch on the parent."""
    interrupted = threading.Event()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:

        def on_interrupt(signum: int, frame: object) -> None:
            interrupted.set()
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_interrupt)

    def watch_parent() -> None:
        while os.read(read_end, 1):  # nothing is ever written: b"" once the parent has gone
            pass
        if not interrupted.is_set():  # the parent forwarded a Ctrl-C already: rolling back, or done
            os.killpg(os.getpgrp(), signal.SIGINT)  # the script and the commands it runs, as Ctrl-C

    threading.Thread(target=watch_parent, daemon=True).start()
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


def main(argv: list[str]) -> int:
    if argv[:1] == [CHILD]:
        run_child(int(argv[1]), argv[2], argv[3:])
        return 0
    if not argv:
        print("usage: python hooks/shield.py SCRIPT [ARGUMENT …]", file=sys.stderr)
        return 2
    return run_shielded(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
