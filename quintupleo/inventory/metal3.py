"""Metal3: a BareMetalHost and its credentials Secret per node, as one multi-document YAML."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML

from quintupleo.inventory import InventoryNode


def metal3_documents(node: InventoryNode, driver: str = "ipmi",
                     namespace: str = "metal3") -> list[dict[str, Any]]:
    info, bmc = node.info, node.bmc
    secret = f"{info.name}-bmc-secret"
    if driver == "redfish":
        if bmc.redfish_url is None:
            raise ValueError("the redfish driver needs the BMC's Redfish endpoint")
        scheme, rest = bmc.redfish_url.split("://", 1)
        address = f"redfish+{scheme}://{rest}{node.redfish_system_id}"
        credentials = bmc.redfish
    else:
        address, credentials = f"ipmi://{bmc.ipmi_address}:{bmc.ipmi_port}", bmc.ipmi
    host: dict[str, Any] = {
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": info.name, "namespace": namespace,
                     "labels": {"quintupleo/profile": node.profile or "none"}},
        "spec": {"online": False, "bootMACAddress": info.macs[0] if info.macs else None,
                 "bootMode": "UEFI" if node.boot_mode == "uefi" else "legacy",
                 "bmc": {"address": address, "credentialsName": secret,
                         "disableCertificateVerification": driver == "redfish"
                         and bmc.verify_ca is not False}},
    }
    return [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": secret, "namespace": namespace},
             "stringData": {"username": credentials.username,
                            "password": credentials.password}}, host]


def metal3_document(nodes: list[InventoryNode], driver: str = "ipmi",
                    namespace: str = "metal3") -> str:
    yaml, out = YAML(), io.StringIO()
    yaml.explicit_start = True
    yaml.dump_all([doc for node in nodes for doc in metal3_documents(node, driver, namespace)],
                  out)
    return out.getvalue()
