"""The node's RAID controller as its BMC emulates it: a few physical drives behind a hardware
RAID controller, and the volumes (logical disks) made of them.

The drives are the BMC's own: each as large as the node's disk, SAS hard disks, as in a common
server. A volume takes whole drives (no two volumes share one) and offers the capacity its RAID
level leaves of them; these rules are what a real controller checks before it builds a volume.
What a volume becomes is the backend's: on the lab a disk of the machine from its next boot
(`has_volume_disks`); on fake and Nova nodes a record only (a Nova guest sees the disks Nova
gives it, not these).
"""

from __future__ import annotations

from dataclasses import dataclass

from quintupleo.errors import InvalidSetting

DRIVES = 4                     # physical drives behind the controller
STRIPE = 64 * 1024             # bytes: capacities are whole stripes


@dataclass(frozen=True)
class Level:
    min_drives: int
    max_drives: int | None
    redundancy: str            # how many drives' worth holds no data: "none", "one", "half"

    def data_drives(self, drives: int) -> int:
        return {"none": drives, "one": drives - 1, "half": drives // 2}[self.redundancy]


LEVELS = {
    "RAID0": Level(1, None, "none"),
    "RAID1": Level(2, 2, "half"),
    "RAID5": Level(3, None, "one"),
    "RAID10": Level(4, None, "half"),
}


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    raid_type: str
    capacity: int              # bytes
    drives: tuple[int, ...]    # drive indexes

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "raid_type": self.raid_type,
                "capacity": self.capacity, "drives": list(self.drives)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Volume:
        drives = data["drives"]
        assert isinstance(drives, list)
        return cls(str(data["id"]), str(data["name"]), str(data["raid_type"]),
                   int(str(data["capacity"])), tuple(int(d) for d in drives))


def plan(volumes: list[Volume], raid_type: str, drives: list[int] | None,
         capacity: int | None, name: str | None, drive_bytes: int) -> Volume:
    """The volume a create request asks for, checked as a controller would: a known level,
    free drives in the number the level takes, a capacity that fits (None: all of it)."""
    level = LEVELS.get(raid_type)
    if level is None:
        raise InvalidSetting(f"RAIDType {raid_type} is not supported; this controller "
                             f"builds {', '.join(LEVELS)}")
    used = {d for v in volumes for d in v.drives}
    if drives is None:   # the controller picks: the fewest free drives the level takes
        free = [d for d in range(DRIVES) if d not in used]
        if len(free) < level.min_drives:
            raise InvalidSetting(f"{raid_type} takes {level.min_drives} drives; "
                                 f"{len(free)} of this controller's are free")
        drives = free[:level.min_drives]
    if len(set(drives)) != len(drives) or any(not 0 <= d < DRIVES for d in drives):
        raise InvalidSetting(f"drives {drives} are not distinct drives of this controller "
                             f"(0-{DRIVES - 1})")
    if busy := sorted(set(drives) & used):
        raise InvalidSetting(f"drive(s) {busy} already belong to a volume")
    if len(drives) < level.min_drives or (level.max_drives and len(drives) > level.max_drives) \
            or (level.redundancy == "half" and len(drives) % 2):
        raise InvalidSetting(f"{raid_type} cannot be built of {len(drives)} drive(s)")
    usable = level.data_drives(len(drives)) * (drive_bytes // STRIPE * STRIPE)
    if capacity is None:
        capacity = usable
    if capacity <= 0 or capacity > usable:
        raise InvalidSetting(f"a {raid_type} volume of {len(drives)} drive(s) holds at most "
                             f"{usable} bytes, not {capacity}")
    ids = {v.id for v in volumes}
    new_id = str(next(i for i in range(1, DRIVES + 2) if str(i) not in ids))
    return Volume(new_id, name or f"Volume {new_id}", raid_type,
                  -(-capacity // STRIPE) * STRIPE, tuple(sorted(drives)))
