"""Logging for pipeline jobs: everything a job prints goes to its Snakemake log and to the terminal."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from typing import Any, TextIO


class _Tee:
    """A text stream that writes to several streams (the job's log file and the terminal)."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def job_log(smk: Any) -> Iterator[None]:
    """Route stdout/stderr of a ``script:`` job into ``snakemake.log[0]`` too, tracebacks included."""
    if not smk.log:
        yield
        return
    with open(smk.log[0], "w") as log:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(stdout, log), _Tee(stderr, log)
        try:
            yield
        except BaseException:
            log.write(traceback.format_exc())
            raise
        finally:
            sys.stdout, sys.stderr = stdout, stderr
