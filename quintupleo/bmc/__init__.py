"""The virtual BMC: node controllers, persistence and service wiring; front ends in ipmi/."""
