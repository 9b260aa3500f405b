"""The runtime's errors."""
import traceback as tb_module

from consecution.errors import ConsecutionError


class UserCodeError(ConsecutionError):
    """User code raised outside tuple processing (open, prepare, next_tuple, finish, ack...)."""

    def __init__(self, component, phase, exc):
        self.component, self.phase, self.exc = component, phase, exc
        self.traceback = "".join(tb_module.format_exception(exc))
        super().__init__(f"{component}.{phase}() raised {type(exc).__name__}: {exc}")


class ModeNotAvailable(ConsecutionError):
    """The mode asked for cannot run here (unknown, or Ray not installed or not reachable)."""


class SetupError(ConsecutionError):
    """What the run was asked to set up cannot be (a metrics port in use): exit 2, naming it."""


class Aborted(BaseException):
    """A second stop signal: leave at once (the log holds what is pending)."""


class SpoutInterrupted(BaseException):
    """A stop signal came while a spout's `next_tuple` ran (it may block): raised there by the
    signal handler, so the first signal stops a blocked spout; what it read and did not emit
    is read again by the next run, from the position last committed."""
