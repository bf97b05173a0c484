"""QuintupleO: virtual bare metal out of ordinary OpenStack instances."""

__version__ = "0.1.0"
