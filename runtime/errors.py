"""The runtime's errors."""
import traceback as tb_module

from consecution.errors import ConsecutionError


class UserCodeError(ConsecutionError):
    """User code raised outside tuple processing (open, prepare, next_tuple, finish, ack...)."""

    def __init__(self, component, phase, exc):
        self.component, self.phase, self.exc = component, phase, exc
        self.traceback = "".join(tb_module.format_exception(exc))
        super().__init__(f"{component}.{phase}() raised {type(exc).__name__}: {exc}")


class Aborted(BaseException):
    """A second stop signal: leave at once (the log holds what is pending)."""
