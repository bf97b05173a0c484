"""The service's CSDL $metadata: which DMTF schemas (and versions) its resources use."""

from __future__ import annotations

from functools import cache

# schema file -> namespaces used from it
SCHEMAS = {
    "ServiceRoot": ["ServiceRoot", "ServiceRoot.v1_20_0"],
    "ComputerSystemCollection": ["ComputerSystemCollection"],
    "ComputerSystem": ["ComputerSystem", "ComputerSystem.v1_27_0"],
    "EthernetInterfaceCollection": ["EthernetInterfaceCollection"],
    "EthernetInterface": ["EthernetInterface", "EthernetInterface.v1_12_4"],
    "ProcessorCollection": ["ProcessorCollection"],
    "Processor": ["Processor", "Processor.v1_22_0"],
    "MemoryCollection": ["MemoryCollection"],
    "Memory": ["Memory", "Memory.v1_23_0"],
    "SimpleStorageCollection": ["SimpleStorageCollection"],
    "SimpleStorage": ["SimpleStorage", "SimpleStorage.v1_3_2"],
    "StorageCollection": ["StorageCollection"],
    "Storage": ["Storage", "Storage.v1_21_0"],
    "Drive": ["Drive", "Drive.v1_22_0"],
    "VolumeCollection": ["VolumeCollection"],
    "Volume": ["Volume", "Volume.v1_10_2"],
    "UpdateService": ["UpdateService", "UpdateService.v1_17_0"],
    "SoftwareInventoryCollection": ["SoftwareInventoryCollection"],
    "SoftwareInventory": ["SoftwareInventory", "SoftwareInventory.v1_13_0"],
    "TaskService": ["TaskService", "TaskService.v1_3_0"],
    "TaskCollection": ["TaskCollection"],
    "Task": ["Task", "Task.v1_7_4"],
    "Power": ["Power", "Power.v1_7_3"],
    "Thermal": ["Thermal", "Thermal.v1_7_3"],
    "EventService": ["EventService", "EventService.v1_10_0"],
    "EventDestinationCollection": ["EventDestinationCollection"],
    "EventDestination": ["EventDestination", "EventDestination.v1_15_0"],
    "Bios": ["Bios", "Bios.v1_2_3"],
    "SecureBoot": ["SecureBoot", "SecureBoot.v1_1_2"],
    "Settings": ["Settings", "Settings.v1_4_0"],
    "MessageRegistryFileCollection": ["MessageRegistryFileCollection"],
    "MessageRegistryFile": ["MessageRegistryFile", "MessageRegistryFile.v1_1_5"],
    "AttributeRegistry": ["AttributeRegistry", "AttributeRegistry.v1_4_0"],
    "ManagerCollection": ["ManagerCollection"],
    "Manager": ["Manager", "Manager.v1_24_0"],
    "VirtualMediaCollection": ["VirtualMediaCollection"],
    "VirtualMedia": ["VirtualMedia", "VirtualMedia.v1_6_5"],
    "ChassisCollection": ["ChassisCollection"],
    "Chassis": ["Chassis", "Chassis.v1_28_0"],
    "SessionService": ["SessionService", "SessionService.v1_2_0"],
    "SessionCollection": ["SessionCollection"],
    "Session": ["Session", "Session.v1_8_0"],
    "AccountService": ["AccountService", "AccountService.v1_18_1"],
    "ManagerAccountCollection": ["ManagerAccountCollection"],
    "ManagerAccount": ["ManagerAccount", "ManagerAccount.v1_14_1"],
    "RoleCollection": ["RoleCollection"],
    "Role": ["Role", "Role.v1_3_3"],
    "Resource": ["Resource", "Resource.v1_23_0"],
    "Message": ["Message", "Message.v1_1_1"],
}


@cache
def metadata_document() -> str:
    references = "".join(
        f'  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/{name}_v1.xml">\n'
        + "".join(f'    <edmx:Include Namespace="{ns}"/>\n' for ns in namespaces)
        + "  </edmx:Reference>\n"
        for name, namespaces in SCHEMAS.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
            + references +
            '  <edmx:DataServices>\n'
            '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
            '      <EntityContainer Name="Service" '
            'Extends="ServiceRoot.v1_20_0.ServiceContainer"/>\n'
            '    </Schema>\n'
            '  </edmx:DataServices>\n'
            '</edmx:Edmx>\n')
