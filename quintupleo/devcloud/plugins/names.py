"""Names the devcloud's parts agree on: its two compute hosts and its data plane's devices.

Standard library only: imported by the plugins in the services' venv and by QuintupleO itself.
"""

FAKE_HOST = "devcloud-compute"   # Nova's fake driver: the default zone
REAL_HOST = "devcloud-qemu"      # Nova's libvirt driver on QEMU: zone `qemu`
DEFAULT_ZONE = "nova"
VM_ZONE = "qemu"

BRIDGE_PREFIX = "qobr"   # a network's bridge: + the network ID's first 11 characters
TAP_PREFIX = "tap"       # Nova's name for a port's tap: + the port ID's first 11 characters
VETH_PREFIX = "qov"      # the bridge end of a `devcloud netns` veth


def bridge_name(network_id: str) -> str:
    return BRIDGE_PREFIX + network_id[:11]


def tap_name(port_id: str) -> str:
    """As nova.network.model names a VIF's device: 'tap' + the port ID, cut to 14 characters."""
    return TAP_PREFIX + port_id[:11]
