"""A system's hardware inventory as Redfish resources: processors, memory, storage and drives,
and its chassis' power and thermal readings.

What Ironic's `redfish` inspect interface reads (through sushy): the Processors collection
(TotalThreads, ProcessorArchitecture, InstructionSet, Model), MemorySummary, SimpleStorage and
Storage with its Drives (CapacityBytes, MediaType, Protocol) and Volumes. Built from what the
backend knows of the node (NodeInfo and its Hardware): the flavor on Nova, the machine on the
lab, the fixed description of a fake node. A virtual node has one processor package with all its
vCPUs as cores, one memory device, and one disk on one controller (virtio-blk: PCIe); the RAID
controller beside it (`Storage/1`) is raid.py's.
"""

from __future__ import annotations

from typing import Any

from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.platform import INLET_CELSIUS, POWER_WATTS
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata
from quintupleo.model import PowerState

ARCHITECTURES = {   # NodeInfo.cpu_arch -> (ProcessorArchitecture, InstructionSet)
    "x86_64": ("x86", "x86-64"), "i686": ("x86", "x86"),
    "aarch64": ("ARM", "ARM-A64"), "armv7l": ("ARM", "ARM-A32"),
}
ENABLED = {"State": "Enabled", "Health": "OK"}
GIB = 1 << 30


def _system(controller: NodeController) -> str:
    return f"{ROOT}/Systems/{controller.info.id}"


def summaries(controller: NodeController) -> dict[str, Any]:
    """The ComputerSystem's inventory properties and links."""
    info, path = controller.info, _system(controller)
    return {
        "SerialNumber": info.hardware.serial or None,
        "BiosVersion": controller.platform.bios_version or None,
        "ProcessorSummary": {"Count": 1, "CoreCount": info.cpus,
                             "LogicalProcessorCount": info.cpus,
                             "Model": info.hardware.cpu_model, "Status": ENABLED},
        "MemorySummary": {"TotalSystemMemoryGiB": round(info.memory_mb / 1024, 3),
                          "Status": ENABLED},
        "Processors": link(f"{path}/Processors"),
        "Memory": link(f"{path}/Memory"),
        "SimpleStorage": link(f"{path}/SimpleStorage"),
        "Storage": link(f"{path}/Storage"),
    }


def processors(controller: NodeController) -> dict[str, Any]:
    path = f"{_system(controller)}/Processors"
    return collection("ProcessorCollection", path, "Processors", [f"{path}/CPU0"])


def processor(controller: NodeController) -> dict[str, Any]:
    info = controller.info
    architecture, instructions = ARCHITECTURES.get(info.cpu_arch, ("OEM", "OEM"))
    return odata("Processor.v1_22_0.Processor", f"{_system(controller)}/Processors/CPU0",
                 Id="CPU0", Name="Processor package 0", Socket="CPU 0", ProcessorType="CPU",
                 ProcessorArchitecture=architecture, InstructionSet=instructions,
                 Manufacturer=info.hardware.manufacturer, Model=info.hardware.cpu_model,
                 TotalCores=info.cpus, TotalEnabledCores=info.cpus, TotalThreads=info.cpus,
                 Status=ENABLED)


def memory_collection(controller: NodeController) -> dict[str, Any]:
    path = f"{_system(controller)}/Memory"
    return collection("MemoryCollection", path, "Memory", [f"{path}/DIMM0"])


def memory(controller: NodeController) -> dict[str, Any]:
    return odata("Memory.v1_23_0.Memory", f"{_system(controller)}/Memory/DIMM0", Id="DIMM0",
                 Name="Memory device 0", MemoryType="DRAM",
                 CapacityMiB=controller.info.memory_mb, Status=ENABLED)


def _disk_name(controller: NodeController) -> str:
    return f"Virtual disk ({controller.info.hardware.disk_protocol})"


def simple_storage_collection(controller: NodeController) -> dict[str, Any]:
    path = f"{_system(controller)}/SimpleStorage"
    return collection("SimpleStorageCollection", path, "Simple storage", [f"{path}/0"])


def simple_storage(controller: NodeController) -> dict[str, Any]:
    return odata("SimpleStorage.v1_3_2.SimpleStorage", f"{_system(controller)}/SimpleStorage/0",
                 Id="0", Name="Disk controller", Status=ENABLED,
                 Devices=[{"Name": _disk_name(controller), "Status": ENABLED,
                           "CapacityBytes": controller.info.local_gb * GIB}])


def storage_collection(controller: NodeController) -> dict[str, Any]:
    path = f"{_system(controller)}/Storage"
    return collection("StorageCollection", path, "Storage", [f"{path}/0", f"{path}/1"])


def storage(controller: NodeController) -> dict[str, Any]:
    path = f"{_system(controller)}/Storage/0"
    protocol = controller.info.hardware.disk_protocol
    return odata("Storage.v1_21_0.Storage", path, Id="0", Name="Disk controller",
                 Status=ENABLED, Drives=[link(f"{path}/Drives/0")],
                 **{"Drives@odata.count": 1},
                 StorageControllers=[{
                     "@odata.id": f"{path}#/StorageControllers/0", "MemberId": "0",
                     "Name": "Disk controller", "Status": ENABLED,
                     "SupportedControllerProtocols": [protocol],
                     "SupportedDeviceProtocols": [protocol],
                     "SupportedRAIDTypes": []}],     # Ironic's raid interface passes it by
                 Volumes=link(f"{path}/Volumes"))


def drive(controller: NodeController) -> dict[str, Any]:
    info = controller.info
    return odata("Drive.v1_22_0.Drive", f"{_system(controller)}/Storage/0/Drives/0", Id="0",
                 Name=_disk_name(controller), CapacityBytes=info.local_gb * GIB,
                 MediaType="HDD", Protocol=info.hardware.disk_protocol,
                 Manufacturer=info.hardware.manufacturer, Model="Virtual disk",
                 SerialNumber=f"{info.hardware.serial or info.uuid[:8]}-D0", Status=ENABLED)


def volumes(controller: NodeController) -> dict[str, Any]:
    path = f"{_system(controller)}/Storage/0/Volumes"
    return collection("VolumeCollection", path, "Volumes", [])


def _running(controller: NodeController) -> bool:
    return controller.power is PowerState.ON


def chassis_power(controller: NodeController) -> dict[str, Any]:
    path = f"{ROOT}/Chassis/{controller.info.id}/Power"
    watts = POWER_WATTS[0] if _running(controller) else POWER_WATTS[1]
    return odata("Power.v1_7_3.Power", path, Id="Power", Name="Power", PowerSupplies=[],
                 PowerControl=[{"@odata.id": f"{path}#/PowerControl/0", "MemberId": "0",
                                "Name": "System power", "PowerConsumedWatts": watts,
                                "Status": ENABLED}])


def chassis_thermal(controller: NodeController) -> dict[str, Any]:
    path = f"{ROOT}/Chassis/{controller.info.id}/Thermal"
    celsius = INLET_CELSIUS[0] if _running(controller) else INLET_CELSIUS[1]
    return odata("Thermal.v1_7_3.Thermal", path, Id="Thermal", Name="Thermal", Fans=[],
                 Temperatures=[{"@odata.id": f"{path}#/Temperatures/0", "MemberId": "0",
                                "Name": "Inlet Temp", "SensorNumber": 2,
                                "PhysicalContext": "Intake", "ReadingCelsius": celsius,
                                "Status": ENABLED}])
