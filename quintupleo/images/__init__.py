"""Boot images made by the project: iPXE network-boot disks, uploaded to Glance."""
