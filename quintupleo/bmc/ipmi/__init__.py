"""IPMI 2.0 over LAN (RMCP+, "lanplus"): an asyncio core on the `cryptography` package."""
