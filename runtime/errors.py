"""The runtime's errors."""
import pickle
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


class RemoteError(Exception):
    """An exception raised in a worker process that could not travel as itself (it does not
    pickle): its type's name and message."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as the worker formatted it:
    the cause of the exception re-raised in the supervisor (as CPython's concurrent.futures
    does), so a traceback printed there shows the user's file and line."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return f'\n"""\n{self.text}"""'


def remote_error(error):
    """The UserCodeError for [component, phase, message, traceback, pickled exception] sent by
    a worker (worker.user_error): the worker's exception itself where it unpickles, else a
    RemoteError."""
    component, phase, message, traceback, pickled = error
    exc = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:  # noqa: BLE001 - its class may not exist here: fall back to the text
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(message)
    exc.__cause__ = RemoteTraceback(traceback)
    return UserCodeError(component, phase, exc)
