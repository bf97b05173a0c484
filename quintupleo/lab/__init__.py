"""A virtual bare-metal lab on this machine: QEMU nodes, their network, their BMC."""
