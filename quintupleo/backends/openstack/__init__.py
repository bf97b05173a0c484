"""Nova servers as bare-metal nodes: driver.OpenStackBackend (openstacksdk, slow to import, loads
only with it), its boot strategies (boot) and serial consoles (console)."""
