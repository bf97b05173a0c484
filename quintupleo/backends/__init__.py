"""The "hardware" behind the virtual BMC: one module per backend (see base.Backend)."""
