"""An ML2 mechanism driver for a cloud with no Neutron agents.

It binds every port to the first segment offered and marks it ACTIVE, as an agent would once the
port is wired. On the fake host that is all (`vif_type=ovs`: nothing is plugged). On the real
host it binds `vif_type=tap`: Nova makes the tap, and the devcloud's L2 agent (l2_agent.py) puts
it on its network's bridge and enforces port security there.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api

from .names import FAKE_HOST


class AgentlessMechanismDriver(api.MechanismDriver):
    def initialize(self) -> None:
        pass

    @property
    def connectivity(self) -> str:
        # As OVS's driver says: L2 ports, so Neutron binds ports with no fixed IP.
        return str(portbindings.CONNECTIVITY_L2)

    def bind_port(self, context: api.PortContext) -> None:
        l2 = {portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2}
        if context.host == FAKE_HOST:
            vif_type = portbindings.VIF_TYPE_OVS
            details = {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False,
                       **l2}
        else:
            vif_type = portbindings.VIF_TYPE_TAP
            details = {portbindings.CAP_PORT_FILTER: True, **l2}
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], vif_type, details,
                                status=constants.PORT_STATUS_ACTIVE)
            return
