"""What the broker spouts and sinks share: their client library, loaded when first used, and
when a spout acknowledges to its broker."""
import importlib

from consecution.topology import Spout

__all__ = ["BrokerSpout", "client_library"]


def client_library(module, extra):
    """`module` imported, or an ImportError that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"this connector needs {module.split('.')[0]}: pip install 'consecution[{extra}]'") \
            from None


class BrokerSpout(Spout):
    """A spout over a broker that takes acknowledgements. Subclasses call `acknowledge_when(context)`
    in `open` and define `confirm(msg_ids)` (acknowledge) and, if a given-up message is not
    simply acknowledged, `reject(msg_id)`. A message is acknowledged once it is safe here: at the
    log commit that holds it (reliability "replay" with a state directory; and with "none",
    where ack and fail never come), else when its tree completes or is given up."""

    at_commit = True

    def acknowledge_when(self, context):
        self.at_commit = context.reliability == "none" or (context.reliability == "replay"
                                                           and context.state_dir is not None)

    def logged(self, msg_ids):
        if self.at_commit:
            self.confirm(msg_ids)

    def ack(self, msg_id):
        if not self.at_commit:
            self.confirm([msg_id])

    def fail(self, msg_id, error):
        if not self.at_commit:
            self.reject(msg_id)

    def confirm(self, msg_ids):
        raise NotImplementedError

    def reject(self, msg_id):
        """Given up: a dead letter here; by default acknowledged there."""
        self.confirm([msg_id])
