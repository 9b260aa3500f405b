"""The root of every error consecution raises.

This is the one module that every part (`topology`, `acker`, `storage`, `runtime`) may
import: it imports nothing, so the one-way arrows between the parts stay intact.
"""


class ConsecutionError(Exception):
    """Base class: every error raised by consecution on purpose derives from it."""
