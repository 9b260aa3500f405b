"""The errors of storage: a state directory that cannot be used, or that belongs elsewhere."""
from consecution.errors import ConsecutionError


class StorageError(ConsecutionError):
    """The state directory cannot be used."""


class TopologyMismatch(StorageError):
    """The state directory belongs to another topology, or to a shape that would mis-route
    its pending records."""
