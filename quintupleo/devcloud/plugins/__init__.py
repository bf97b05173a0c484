"""Code that runs inside the local cloud's own services (their venv), not in QuintupleO's.

The installer copies this folder into a small distribution installed into the services' venv:
`agentless_ml2` is registered as the ML2 mechanism driver `quintupleo_agentless`, and
`sqlite_locking` is imported at interpreter start by a .pth file.
"""
