"""Nova servers as bare-metal nodes."""

from quintupleo.backends.openstack.driver import OpenStackBackend

__all__ = ["OpenStackBackend"]
