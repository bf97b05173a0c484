"""An ML2 mechanism driver for a cloud with no agents and no data plane.

It binds every port to the first segment offered and marks it ACTIVE, as an OVS agent would once
the port is wired, so Nova sees bound ports and servers boot on a Neutron that has no agents.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class AgentlessMechanismDriver(api.MechanismDriver):
    def initialize(self) -> None:
        pass

    @property
    def connectivity(self) -> str:
        # As OVS's driver says: L2 ports, so Neutron binds ports with no fixed IP.
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context: api.PortContext) -> None:
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False,
                 portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2},
                status=constants.PORT_STATUS_ACTIVE,
            )
            return
