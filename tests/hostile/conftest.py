"""The fuzz and fault tier: hostile clients, floods, slow clients, and processes killed half
way. Each test bounds itself (counts and timeouts), starts what it needs and stops it. Its
fixtures (`config`, `console_bmc`) are the shared ones in tests/conftest.py."""
