//! Structured payload decoding (`tsem_evidence::payload`) on payloads built here from the UEFI and
//! TCG structure definitions: what decodes, and what comes back raw with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use tsem_evidence::payload::decode_data;

const EFI_GLOBAL: [u8; 16] = [
    0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
];
const X509: [u8; 16] = [
    0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72,
];

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn var(name: &str, data: &[u8]) -> Vec<u8> {
    let mut v = EFI_GLOBAL.to_vec();
    v.extend_from_slice(&(name.encode_utf16().count() as u64).to_le_bytes());
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend(utf16(name));
    v.extend_from_slice(data);
    v
}

fn node(ty: u8, sub: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, sub];
    v.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// `PciRoot(0x0)/Pci(0x2,0x0)/\EFI\BOOT\BOOTX64.EFI` and the end node.
fn path() -> Vec<u8> {
    let mut p = node(2, 1, &[0xd0, 0x41, 0x03, 0x0a, 0, 0, 0, 0]);
    p.extend(node(1, 1, &[0, 2]));
    p.extend(node(4, 4, &utf16("\\EFI\\BOOT\\BOOTX64.EFI\0")));
    p.extend(node(0x7f, 0xff, &[]));
    p
}

fn j(ty: u32, data: &[u8]) -> Value {
    serde_json::to_value(decode_data(ty, data)).unwrap()
}

#[test]
fn variables_decode_with_their_meaning() {
    // Boot0001: EFI_LOAD_OPTION with a description, a device path and optional data.
    let p = path();
    let mut opt = 1u32.to_le_bytes().to_vec();
    opt.extend_from_slice(&(p.len() as u16).to_le_bytes());
    opt.extend(utf16("Linux Boot Manager\0"));
    opt.extend_from_slice(&p);
    opt.extend_from_slice(&[0xaa, 0xbb]);
    let v = j(0x8000_0002, &var("Boot0001", &opt));
    assert_eq!(v["kind"], "variable");
    assert_eq!(v["guid"], "8be4df61-93ca-11d2-aa0d-00e098032b8c");
    assert_eq!(
        v["value"],
        json!({
            "attributes": 1,
            "description": "Linux Boot Manager",
            "device_path": "PciRoot(0x0)/Pci(0x2,0x0)/\\EFI\\BOOT\\BOOTX64.EFI",
            "optional_data": "aabb",
        })
    );
    // db: one EFI_SIGNATURE_LIST of two x509 entries by one owner.
    let mut list = X509.to_vec();
    let sig_size: u32 = 16 + 8;
    list.extend_from_slice(&(28 + 2 * sig_size).to_le_bytes());
    list.extend_from_slice(&0u32.to_le_bytes());
    list.extend_from_slice(&sig_size.to_le_bytes());
    for _ in 0..2 {
        list.extend_from_slice(&[0x77; 16]);
        list.extend_from_slice(&[0x30; 8]);
    }
    let v = j(0x8000_0001, &var("db", &list));
    assert_eq!(
        v["value"],
        json!([{
            "signature_type": "x509",
            "signature_size": 24,
            "signatures": 2,
            "owners": ["77777777-7777-7777-7777-777777777777"],
        }])
    );
    // A signature list that does not fill the data: no meaning, the bytes are still there.
    let v = j(0x8000_0001, &var("db", &list[..list.len() - 1]));
    assert!(v.get("value").is_none());
    assert_eq!(v["data"].as_str().unwrap().len(), 2 * (list.len() - 1));
    // VariableDataLength one too small (some shims): name kept, the bytes after it, and why.
    let mut bad = var("db", &[1, 2, 3]);
    bad[24] = 2;
    let v = j(0x8000_00E0, &bad);
    assert_eq!(
        (v["name"].clone(), v["data"].clone()),
        ("db".into(), "010203".into())
    );
    assert_eq!(
        v["size_mismatch"],
        "VariableDataLength 2, but 3 bytes follow the name"
    );
    // A name running past the event: raw, with the reason.
    let v = j(0x8000_0001, &var("SecureBoot", &[1])[..30]);
    assert_eq!(v["kind"], "raw");
    assert!(v["reason"].as_str().unwrap().contains("UEFI_VARIABLE_DATA"));
}

#[test]
fn images_blobs_tables_and_tags() {
    let p = path();
    let mut img = Vec::new();
    for x in [0x7f00_1000u64, 0x20000, 0, p.len() as u64] {
        img.extend_from_slice(&x.to_le_bytes());
    }
    img.extend_from_slice(&p);
    let v = j(0x8000_0003, &img);
    assert_eq!(v["address"], "0x7f001000");
    assert_eq!(v["length"], 0x20000);
    assert_eq!(v["file"], "\\EFI\\BOOT\\BOOTX64.EFI");
    assert!(v.get("device_path_error").is_none());
    // LengthOfDevicePath larger than what follows: the prefix decoded, and the reason.
    img[24] += 10;
    let v = j(0x8000_0003, &img);
    assert_eq!(
        v["device_path"],
        "PciRoot(0x0)/Pci(0x2,0x0)/\\EFI\\BOOT\\BOOTX64.EFI"
    );
    assert!(
        v["device_path_error"]
            .as_str()
            .unwrap()
            .contains("LengthOfDevicePath"),
        "{v}"
    );
    assert_eq!(j(0x8000_0003, &img[..31])["kind"], "raw");

    let mut blob2 = vec![3];
    blob2.extend_from_slice(b"FVM");
    blob2.extend_from_slice(&0xff00_0000u64.to_le_bytes());
    blob2.extend_from_slice(&0x10_0000u64.to_le_bytes());
    assert_eq!(
        j(0x8000_000A, &blob2),
        json!({"kind": "firmware_blob", "description": "FVM", "base": "0xff000000", "length": 1048576})
    );
    assert_eq!(j(0x8000_0008, &blob2)["kind"], "raw");

    let mut tables = 1u64.to_le_bytes().to_vec();
    tables.extend_from_slice(&EFI_GLOBAL);
    tables.extend_from_slice(&0xdead_0000u64.to_le_bytes());
    assert_eq!(
        j(0x8000_0009, &tables),
        json!({"kind": "handoff_tables", "tables": [
            {"guid": "8be4df61-93ca-11d2-aa0d-00e098032b8c", "address": "0xdead0000"}]})
    );
    tables[0] = 2;
    assert!(
        j(0x8000_0009, &tables)["reason"]
            .as_str()
            .unwrap()
            .contains("2 tables")
    );

    let mut tag = 0x8F3B_22EDu32.to_le_bytes().to_vec();
    tag.extend_from_slice(&(b"LOADED_IMAGE::LoadOptions\0".len() as u32).to_le_bytes());
    tag.extend_from_slice(b"LOADED_IMAGE::LoadOptions\0");
    let v = j(6, &tag);
    assert_eq!(v["kind"], "tagged_event");
    assert_eq!(v["tag_id"], 0x8F3B_22EDu32);
    assert_eq!(v["text"], "LOADED_IMAGE::LoadOptions");

    let mut loc = b"StartupLocality\0".to_vec();
    loc.push(3);
    assert_eq!(
        j(3, &loc),
        json!({"kind": "startup_locality", "locality": 3})
    );
    assert_eq!(
        j(0x8000_0010, b"HCRTM"),
        json!({"kind": "text", "encoding": "utf-8", "text": "HCRTM"})
    );
    assert_eq!(
        j(1, b"ACPI DATA"),
        json!({"kind": "text", "encoding": "utf-8", "text": "ACPI DATA"})
    );
    let mut post = 0xffe0_0000u64.to_le_bytes().to_vec();
    post.extend_from_slice(&0x2000u64.to_le_bytes());
    assert_eq!(j(1, &post)["kind"], "firmware_blob");
}
