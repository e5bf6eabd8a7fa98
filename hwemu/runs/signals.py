"""The stop signals of the ``hwemu run`` command: SIGINT (Ctrl-C), SIGTERM and SIGHUP.

:class:`StopSignals` handles them for the whole command, in three phases:

- **start-up** (loading the config, importing custom workloads, booting): the first
  signal ends the command at once; :class:`Interrupted` is raised where it is, and
  the command exits 128 + the signal's number (130, 143, 129) with one line, without
  a traceback.
- **the run** (from the booted machine to the result): the first signal stops the
  run (:meth:`hwemu.runs.Run.stop`): the workloads stop and the partial summary, the
  JSON and KTAP follow, as when the duration is over. A second Ctrl-C quits at once
  (exit 130, no summary); another SIGTERM or SIGHUP is ignored, the stop being under
  way.
- **the output** (summary, JSON, KTAP, plots): signals wait until it is written.

Whenever a stop signal came, the command exits 128 + its number. Signal handlers run
between two bytecodes of whatever runs, a workload's task included: the handler of
the run phase only sets flags, and the watcher stops the workloads at its next sample.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A stop signal ended the command before its run started (``signum``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """The handler of :data:`STOP_SIGNALS` while the command runs (a context manager).

    :param process: the process ends with the command (``hwemu`` on the command line):
        a second Ctrl-C may end it at once with ``os._exit()``, and the signals are
        ignored once the command is done (the interpreter resets Python handlers to
        the default while it exits, and a late Ctrl-C would then kill it by SIGINT
        instead of letting it exit 130). Otherwise a second Ctrl-C raises
        :class:`KeyboardInterrupt` and the handlers are restored at the end.
    """

    def __init__(self, process: bool):
        self.process = process
        self.signum: int | None = None   # the first stop signal
        self.phase = "start-up"          # start-up, run or output
        self.run = None                  # the Run that a signal stops, in the run phase
        self._saved: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._saved[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, signal.SIG_IGN if self.process else handler)

    def exit_code(self, code: int) -> int:
        """The command's exit code: 128 + the stop signal's number if one came."""
        return code if self.signum is None else 128 + self.signum

    @contextlib.contextmanager
    def running(self, run):
        """The run phase of ``run`` (a :class:`hwemu.runs.Run`): a signal stops it once
        its machine is up; one that came before (between two runs) stops it at once."""
        self.run, self.phase = run, "run"
        if self.signum is not None:
            run.stop(self.signum)
        try:
            yield
        finally:
            self.run, self.phase = None, "output"

    def _handler(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        run = self.run
        if run is not None and run.machine is not None:
            if first:
                run.stop(signum)
            elif signum == signal.SIGINT:
                self._quit()
        elif first and self.phase != "output":
            raise Interrupted(signum)
        # Otherwise: the output is being written, or start-up's Interrupted is on its way.

    def _quit(self) -> None:
        """The second Ctrl-C of a run: end now, without the summary."""
        if not self.process:
            raise KeyboardInterrupt
        with contextlib.suppress(Exception):   # it may have interrupted a write
            sys.stdout.flush()
        text = "hwemu: interrupted again: quitting without the summary\n"
        if os.isatty(2):
            text = "\x1b[?25h\n" + text   # the live display hid the cursor
        with contextlib.suppress(OSError):
            os.write(2, text.encode())
        os._exit(128 + signal.SIGINT)
