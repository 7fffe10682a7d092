//! Partition type names as cgpt knew them (seismograph `cgpt_common.c` `supported_types[]`).

use uuid::{uuid, Uuid};

/// (cgpt name, type GUID). Aliases map to the same GUID.
pub const TYPES: &[(&str, Uuid)] = &[
    (
        "coreos-rootfs",
        uuid!("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6"),
    ),
    ("coreos-usr", uuid!("5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6")),
    (
        "coreos-resize",
        uuid!("3884dd41-8582-4404-b9a8-e9b84f2df50e"),
    ),
    (
        "coreos-reserved",
        uuid!("c95dc21a-df0e-4340-8d7b-26cbfa9a03e0"),
    ),
    (
        "coreos-root-raid",
        uuid!("be9067b9-ea49-4f15-b4f6-f36f8c9e1818"),
    ),
    ("efi", uuid!("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")),
    ("bios", uuid!("21686148-6449-6e6f-744e-656564454649")),
    ("data", uuid!("0fc63daf-8483-4772-8e79-3d69d8477de4")),
    ("linux-data", uuid!("0fc63daf-8483-4772-8e79-3d69d8477de4")),
];

/// The type a layout names: a cgpt name or a raw GUID. `None` for an unknown name.
pub fn type_guid(name: &str) -> Option<Uuid> {
    TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, g)| *g)
        .or_else(|| Uuid::parse_str(name).ok())
}

/// The first cgpt name for a type GUID, for display.
pub fn type_name(guid: &Uuid) -> Option<&'static str> {
    TYPES.iter().find(|(_, g)| g == guid).map(|(n, _)| *n)
}
