"""The asset types, organization types and enums the sandbox serves.

Shapes follow API-NOTES.md: ``system.contact`` exactly as documented, the two other
documented system types, ``ext_`` extensions on a system type, and one custom type that
uses every property type the API knows, so a connector's type mapping is tested on all
of them.
"""

from __future__ import annotations

from typing import Any

PROPERTY_TYPES: tuple[str, ...] = (
    "string",
    "number",
    "integer",
    "boolean",
    "array",
    "secret",
    "totp",
    "file",
    "date",
    "datetime",
    "richtext",
    "richtext_large",
)
HIDDEN_PROPERTY_TYPES: frozenset[str] = frozenset({"secret", "totp"})

CONTACT_TYPES = [
    "Approver",
    "Champion",
    "Decision Maker",
    "End User",
    "Evaluator",
    "Influencer",
    "Owner",
    "Other",
]
CONTACT_METHOD_TYPES = [
    "Phone",
    "Fax",
    "Mobile",
    "Email",
    "Website",
    "Twitter",
    "LinkedIn",
    "Other",
]
CONFIGURATION_KINDS = ["Server", "Workstation", "Laptop", "Firewall", "Switch", "Printer", "Other"]
LICENSE_TIERS = ["Basic", "Standard", "Enterprise"]
VISIBILITIES = ["inherit", "private", "restricted"]
ORGANIZATION_STATUSES = ["active", "onboarding", "inactive"]

CONTACT = "system.contact"
LOCATION = "system.location"
CONFIGURATION = "system.configuration"
LICENSE = "software_license"


def _prop(name: str, type_: str, display: str, required: bool = False, **extra: Any) -> dict:
    return {"name": name, "type": type_, "display_name": display, "required": required, **extra}


def _ref(name: str, display: str, targets: list[str], multiple: bool) -> dict:
    return {
        "name": name,
        "display_name": display,
        "required": False,
        "multiple": multiple,
        "target_asset_types": targets,
    }


ASSET_TYPE_DEFINITIONS: list[dict[str, Any]] = [
    {
        "name": CONTACT,
        "display_name": "Contact",
        "description": "People at an organization.",
        "is_system": True,
        "properties": [
            _prop("first_name", "string", "First name"),
            _prop("last_name", "string", "Last name"),
            _prop("title", "string", "Title"),
            _prop("important", "boolean", "Important", required=True),
            _prop("contact_type", "string", "Contact type", enum=CONTACT_TYPES),
            _prop(
                "contact_methods",
                "array",
                "Contact methods",
                array={
                    "type": "object",
                    "properties": [
                        _prop("type", "string", "Type", enum=CONTACT_METHOD_TYPES),
                        _prop("value", "string", "Value"),
                    ],
                },
            ),
            _prop("preferred_contact_method", "string", "Preferred", enum=CONTACT_METHOD_TYPES),
            _prop("notes", "richtext", "Notes"),
        ],
        "references": [_ref("location", "Location", [LOCATION], multiple=False)],
    },
    {
        "name": LOCATION,
        "display_name": "Location",
        "description": "Sites and offices.",
        "is_system": True,
        "properties": [
            _prop("address_1", "string", "Address 1"),
            _prop("address_2", "string", "Address 2"),
            _prop("city", "string", "City"),
            _prop("region", "string", "Region"),
            _prop("postal_code", "string", "Postal code"),
            _prop("country", "string", "Country"),
            _prop("phone", "string", "Phone"),
            _prop("notes", "richtext", "Notes"),
            _prop("ext_opened_on", "date", "Opened on"),
        ],
        "references": [_ref("ext_primary_contact", "Primary contact", [CONTACT], multiple=False)],
    },
    {
        "name": CONFIGURATION,
        "display_name": "Configuration",
        "description": "Devices and systems under management.",
        "is_system": True,
        "properties": [
            _prop("hostname", "string", "Hostname", required=True),
            _prop("configuration_type", "string", "Type", enum=CONFIGURATION_KINDS),
            _prop("manufacturer", "string", "Manufacturer"),
            _prop("model", "string", "Model"),
            _prop("serial_number", "string", "Serial number"),
            _prop("ip_address", "string", "IP address"),
            _prop("cpu_cores", "integer", "CPU cores"),
            _prop("ram_gb", "number", "RAM (GB)"),
            _prop("is_managed", "boolean", "Managed"),
            _prop("purchased_on", "date", "Purchased on"),
            _prop("warranty_expires_at", "datetime", "Warranty expires"),
            _prop("notes", "richtext", "Notes"),
            _prop("ext_asset_tag", "string", "Asset tag"),
            _prop("ext_admin_password", "secret", "Admin password"),
            _prop("ext_decommissioned_on", "date", "Decommissioned on"),
        ],
        "references": [
            _ref("location", "Location", [LOCATION], multiple=False),
            _ref("ext_contacts", "Contacts", [CONTACT], multiple=True),
        ],
    },
    {
        "name": LICENSE,
        "display_name": "Software License",
        "description": "A custom type using every property type.",
        "is_system": False,
        "properties": [
            _prop("product", "string", "Product", required=True),
            _prop("tier", "string", "Tier", enum=LICENSE_TIERS),
            _prop("seats", "integer", "Seats"),
            _prop("annual_cost", "number", "Annual cost"),
            _prop("auto_renew", "boolean", "Auto-renew"),
            _prop("starts_on", "date", "Starts on"),
            _prop("renews_at", "datetime", "Renews at"),
            _prop("cancelled_on", "date", "Cancelled on"),
            _prop("license_key", "secret", "License key"),
            _prop("portal_mfa", "totp", "Portal MFA"),
            _prop("agreement", "file", "Agreement"),
            _prop("terms", "richtext", "Terms"),
            _prop("full_text", "richtext_large", "Full text"),
            _prop(
                "line_items",
                "array",
                "Line items",
                array={
                    "type": "object",
                    "properties": [
                        _prop("sku", "string", "SKU"),
                        _prop("quantity", "integer", "Quantity"),
                        _prop("unit_price", "number", "Unit price"),
                    ],
                },
            ),
        ],
        "references": [
            _ref("vendor_contact", "Vendor contact", [CONTACT], multiple=False),
            _ref("covered_configurations", "Covered", [CONFIGURATION], multiple=True),
        ],
    },
]

ORGANIZATION_TYPE_DEFINITIONS: list[dict[str, Any]] = [
    {"name": "client", "description": "A managed client.", "is_system": True},
    {"name": "vendor", "description": "A supplier.", "is_system": True},
    {"name": "internal", "description": "The provider itself.", "is_system": True},
    {"name": "partner", "description": "A custom type.", "is_system": False},
]

USER_ROLES = ["Administrator", "Editor", "Viewer"]
