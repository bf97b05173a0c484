"""Redfish (DMTF DSP0266) over HTTPS: one service root for all nodes, on aiohttp."""
