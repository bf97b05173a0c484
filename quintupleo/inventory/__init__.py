"""Inventories for provisioning tools, written from what the BMC serves or an environment holds."""
