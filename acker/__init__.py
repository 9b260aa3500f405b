"""The acker: XOR tracking of tuple trees. Pure; imports nothing of the other parts."""
from .tracker import Acker, new_id

__all__ = ["Acker", "new_id"]
