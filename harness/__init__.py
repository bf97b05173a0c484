"""Real processes and clients driven by the tests and the benchmarks alike: the BMC service as a
process, SOL over ipmitool, Ironic from its own venv, an undercloud in a network namespace, a
Linux guest and a ramdisk. Not part of the installed package."""
