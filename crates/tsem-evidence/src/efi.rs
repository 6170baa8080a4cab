//! Event types and payloads of the TCG PC Client Platform Firmware Profile and the UEFI spec,
//! decoded for humans, and the content whose digest an event type defines.
//!
//! Decoding is best effort: a payload that does not have the expected shape is shown as its size
//! and never makes the log invalid, because firmware is full of quirks and the digests, not the
//! payloads, are what the TPM extended.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::reader::Reader;

/// Name of a known event type (PC Client PFP §10.4.1, TXT event types 0x4xx).
pub fn event_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0x0000_0000 => "EV_PREBOOT_CERT",
        0x0000_0001 => "EV_POST_CODE",
        0x0000_0002 => "EV_UNUSED",
        0x0000_0003 => "EV_NO_ACTION",
        0x0000_0004 => "EV_SEPARATOR",
        0x0000_0005 => "EV_ACTION",
        0x0000_0006 => "EV_EVENT_TAG",
        0x0000_0007 => "EV_S_CRTM_CONTENTS",
        0x0000_0008 => "EV_S_CRTM_VERSION",
        0x0000_0009 => "EV_CPU_MICROCODE",
        0x0000_000A => "EV_PLATFORM_CONFIG_FLAGS",
        0x0000_000B => "EV_TABLE_OF_DEVICES",
        0x0000_000C => "EV_COMPACT_HASH",
        0x0000_000D => "EV_IPL",
        0x0000_000E => "EV_IPL_PARTITION_DATA",
        0x0000_000F => "EV_NONHOST_CODE",
        0x0000_0010 => "EV_NONHOST_CONFIG",
        0x0000_0011 => "EV_NONHOST_INFO",
        0x0000_0012 => "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x0000_0401 => "EV_TXT_PCR_MAPPING",
        0x0000_0402 => "EV_TXT_HASH_START",
        0x0000_0403 => "EV_TXT_COMBINED_HASH",
        0x0000_0404 => "EV_TXT_MLE_HASH",
        0x8000_0000 => "EV_EFI_EVENT_BASE",
        0x8000_0001 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
        0x8000_0002 => "EV_EFI_VARIABLE_BOOT",
        0x8000_0003 => "EV_EFI_BOOT_SERVICES_APPLICATION",
        0x8000_0004 => "EV_EFI_BOOT_SERVICES_DRIVER",
        0x8000_0005 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
        0x8000_0006 => "EV_EFI_GPT_EVENT",
        0x8000_0007 => "EV_EFI_ACTION",
        0x8000_0008 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        0x8000_0009 => "EV_EFI_HANDOFF_TABLES",
        0x8000_000A => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        0x8000_000B => "EV_EFI_HANDOFF_TABLES2",
        0x8000_000C => "EV_EFI_VARIABLE_BOOT2",
        0x8000_000D => "EV_EFI_GPT_EVENT2",
        0x8000_0010 => "EV_EFI_HCRTM_EVENT",
        0x8000_00E0 => "EV_EFI_VARIABLE_AUTHORITY",
        0x8000_00E1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
        0x8000_00E2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
        0x8000_00E3 => "EV_EFI_SPDM_DEVICE_POLICY",
        0x8000_00E4 => "EV_EFI_SPDM_DEVICE_AUTHORITY",
        _ => return None,
    })
}

/// The event type's name, or its hex value.
pub fn event_type_label(t: u32) -> String {
    match event_type_name(t) {
        Some(n) => n.into(),
        None => format!("0x{t:08x}"),
    }
}

/// Content whose digest the event type defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownContent<'a> {
    /// What the specification says is hashed.
    pub primary: &'a [u8],
    /// A second form some firmware hashes instead (e.g. the whole `UEFI_VARIABLE_DATA` for
    /// `EV_EFI_VARIABLE_BOOT`), accepted as well.
    pub alternative: Option<&'a [u8]>,
}

/// A parsed `UEFI_VARIABLE_DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariableData<'a> {
    /// `VariableName` GUID (vendor namespace).
    pub guid: [u8; 16],
    /// `UnicodeName`, UTF-16LE bytes.
    pub name_utf16: &'a [u8],
    /// `VariableData`.
    pub data: &'a [u8],
}

impl VariableData<'_> {
    /// Parse; `None` if the sizes do not fit exactly.
    pub fn parse(data: &[u8]) -> Option<VariableData<'_>> {
        let mut r = Reader::new(data);
        let guid = r.array::<16>().ok()?;
        let name_len = r.u64_le().ok()?;
        let data_len = r.u64_le().ok()?;
        let name_utf16 = r.take(name_len.checked_mul(2)?).ok()?;
        let var = r.take(data_len).ok()?;
        if !r.is_empty() {
            return None;
        }
        Some(VariableData {
            guid,
            name_utf16,
            data: var,
        })
    }

    /// The variable name.
    pub fn name(&self) -> String {
        utf16(self.name_utf16)
    }
}

/// The content an event's digest must be the hash of, for the event types where the content is
/// defined by the event data: separators, EFI variables, EFI actions and the GPT event.
pub fn known_content(event_type: u32, data: &[u8]) -> Option<KnownContent<'_>> {
    match event_type {
        0x0000_0004 | 0x8000_0001 | 0x8000_000C | 0x8000_0007 | 0x8000_0006 => Some(KnownContent {
            primary: data,
            alternative: None,
        }),
        // PFP: the digest of EV_EFI_VARIABLE_BOOT covers VariableData only, but many firmwares hash
        // the whole structure. shim measures EV_EFI_VARIABLE_AUTHORITY the same two ways.
        0x8000_0002 | 0x8000_00E0 => {
            let v = VariableData::parse(data)?;
            Some(KnownContent {
                primary: v.data,
                alternative: Some(data),
            })
        }
        _ => None,
    }
}

pub(crate) fn utf16(b: &[u8]) -> String {
    let units = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Printable ASCII rendering of a byte string (stops at the first NUL, escapes the rest).
pub(crate) fn ascii(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let mut s = String::new();
    for &c in b.iter().take(end.min(512)) {
        if (0x20..0x7f).contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    if end > 512 {
        s.push('…');
    }
    s
}

fn looks_ascii(b: &[u8]) -> bool {
    let t = match b.iter().position(|&c| c == 0) {
        Some(p) => b.get(..p).unwrap_or(&[]),
        None => b,
    };
    !t.is_empty()
        && t.iter()
            .all(|&c| (0x20..0x7f).contains(&c) || c == b'\n' || c == b'\t')
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` of a mixed-endian EFI GUID.
pub fn guid(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// An EFI device path in the UEFI text form, with the reason appended if it stops early.
pub fn device_path(b: &[u8]) -> String {
    let d = crate::devpath::decode(b);
    match d.error {
        Some(e) => format!("{} <{e}>", d.text),
        None => d.text,
    }
}

fn describe_variable(data: &[u8]) -> String {
    let Some(v) = VariableData::parse(data) else {
        return format!("malformed UEFI_VARIABLE_DATA ({} bytes)", data.len());
    };
    let name = v.name();
    let mut s = format!("{}:{} ({} bytes)", guid(&v.guid), name, v.data.len());
    if matches!(
        name.as_str(),
        "SecureBoot" | "DeployedMode" | "AuditMode" | "SetupMode"
    ) && let Some(b) = v.data.first()
    {
        s.push_str(&format!(" = {b}"));
    } else if name == "BootOrder" {
        let order: Vec<String> = v
            .data
            .chunks_exact(2)
            .take(32)
            .map(|c| format!("{:04X}", u16::from_le_bytes([c[0], c[1]])))
            .collect();
        s.push_str(&format!(" = {}", order.join(",")));
    } else if name.starts_with("Boot") && name.len() == 8 {
        // EFI_LOAD_OPTION: Attributes u32, FilePathListLength u16, Description (UTF-16, NUL-ended).
        let d = v.data.get(6..).unwrap_or(&[]);
        let mut end = 0;
        while let Some(c) = d.get(end..end + 2) {
            end += 2;
            if c == [0, 0] {
                break;
            }
        }
        let desc = utf16(d.get(..end).unwrap_or(&[]));
        let fp_len = v
            .data
            .get(4..6)
            .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
            .unwrap_or(0);
        let fp = d
            .get(end..end.saturating_add(fp_len))
            .map(device_path)
            .unwrap_or_default();
        s.push_str(&format!(" = \"{desc}\" {fp}"));
    }
    s
}

fn describe_image(data: &[u8]) -> String {
    let mut r = Reader::new(data);
    let (Ok(addr), Ok(len), Ok(_link), Ok(dp_len)) =
        (r.u64_le(), r.u64_le(), r.u64_le(), r.u64_le())
    else {
        return format!("malformed UEFI_IMAGE_LOAD_EVENT ({} bytes)", data.len());
    };
    let dp = r
        .take(dp_len)
        .map(device_path)
        .unwrap_or_else(|_| "<bad device path length>".into());
    format!("image at 0x{addr:x}, {len} bytes: {dp}")
}

/// A UEFI_GPT_DATA event's disk GUID and partition entries, or None when the header is short
/// or the entries do not fill the event exactly.
pub(crate) fn gpt_entries(data: &[u8]) -> Option<([u8; 16], core::slice::ChunksExact<'_, u8>)> {
    let hdr = data.get(..92)?;
    let mut dg = [0u8; 16];
    dg.copy_from_slice(&hdr[56..72]);
    let entry_size = u64::from(u32::from_le_bytes([hdr[84], hdr[85], hdr[86], hdr[87]]));
    // The header is sizeof(EFI_PARTITION_TABLE_HEADER): 92 bytes packed, 96 with the padding most
    // compilers add. Take the one that makes the entries fill the event exactly.
    for hsize in [96usize, 92] {
        let mut r = Reader::new(data.get(hsize..).unwrap_or(&[]));
        let Ok(n) = r.u64_le() else { continue };
        if entry_size < 128 || n.checked_mul(entry_size) != Some(r.remaining() as u64) {
            continue;
        }
        let size = usize::try_from(entry_size).ok()?;
        return Some((dg, r.rest().chunks_exact(size)));
    }
    None
}

fn describe_gpt(data: &[u8]) -> String {
    let Some((dg, entries)) = gpt_entries(data) else {
        return format!("malformed UEFI_GPT_DATA ({} bytes)", data.len());
    };
    let n = entries.len();
    let names: Vec<String> = entries.take(128).map(|e| utf16(&e[56..128])).collect();
    format!(
        "disk {} with {n} partitions: {}",
        guid(&dg),
        names.join(", ")
    )
}

/// An SP800-155 platform id event (`EV_NO_ACTION`, signature `SP800-155 Event`): the vendor
/// id, the reference manifest GUID and its three strings; None when it is cut short.
pub(crate) fn sp800_155(data: &[u8]) -> Option<(u32, [u8; 16], Vec<String>)> {
    let mut r = Reader::new(data);
    r.take(16).ok()?;
    let vendor = r.u32_le().ok()?;
    let g = r.array::<16>().ok()?;
    let mut strs = Vec::new();
    for _ in 0..3 {
        let n = r.u8().ok()?;
        strs.push(ascii(r.take(u64::from(n)).ok()?));
    }
    Some((vendor, g, strs))
}

fn describe_sp800_155(data: &[u8]) -> String {
    match sp800_155(data) {
        Some((vendor, g, strs)) => format!(
            "SP800-155 platform id: vendor {vendor}, manifest {}, {}",
            guid(&g),
            strs.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => format!("SP800-155 event ({} bytes)", data.len()),
    }
}

fn describe_no_action(data: &[u8]) -> String {
    if data.starts_with(b"StartupLocality\0") && data.len() == 17 {
        return format!("StartupLocality {}", data[16]);
    }
    if data.starts_with(b"SP800-155 Event") {
        return describe_sp800_155(data);
    }
    if data.starts_with(b"Spec ID Event") {
        return format!("{} header", ascii(data.get(..15).unwrap_or(data)));
    }
    if data.starts_with(b"NvIndexInstance") || data.starts_with(b"NvIndexDynamic") {
        return format!(
            "{} ({} bytes)",
            ascii(data.get(..16).unwrap_or(data)),
            data.len()
        );
    }
    if looks_ascii(data) {
        return format!("\"{}\"", ascii(data));
    }
    format!("vendor data ({} bytes)", data.len())
}

/// One line describing an event's payload.
pub fn describe(event_type: u32, data: &[u8]) -> String {
    match event_type {
        0x0000_0003 => describe_no_action(data),
        0x0000_0004 => match data {
            [0, 0, 0, 0] => "separator".into(),
            [0xff, 0xff, 0xff, 0xff] => "separator (error)".into(),
            _ => format!("separator ({} bytes)", data.len()),
        },
        0x8000_0001 | 0x8000_0002 | 0x8000_000C | 0x8000_00E0 => describe_variable(data),
        0x8000_0003..=0x8000_0005 => describe_image(data),
        0x8000_0006 => describe_gpt(data),
        0x0000_0008
            if data.len() >= 2 && data.len().is_multiple_of(2) && data.get(1) == Some(&0) =>
        {
            format!("\"{}\"", utf16(data))
        }
        0x8000_0008 if data.len() == 16 => {
            let mut r = Reader::new(data);
            let (b, l) = (r.u64_le().unwrap_or(0), r.u64_le().unwrap_or(0));
            format!("firmware blob at 0x{b:x}, {l} bytes")
        }
        0x8000_0009 => {
            let n = Reader::new(data).u64_le().unwrap_or(0);
            format!("{n} handoff tables")
        }
        _ if looks_ascii(data) => format!("\"{}\"", ascii(data)),
        _ => format!("{} bytes", data.len()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn variable_data_needs_exact_sizes() {
        let mut v = Vec::new();
        v.extend_from_slice(&[
            0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0, 0xe0, 0x98, 0x03, 0x2b,
            0x8c,
        ]);
        v.extend_from_slice(&2u64.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(&[b'S', 0, b'B', 0, 1]);
        let p = VariableData::parse(&v).unwrap();
        assert_eq!(p.name(), "SB");
        assert_eq!(p.data, &[1]);
        assert_eq!(guid(&p.guid), "8be4df61-93ca-11d2-aa0d-00e098032b8c");
        assert!(VariableData::parse(&v[..v.len() - 1]).is_none());
        v.push(0);
        assert!(VariableData::parse(&v).is_none());
        let k = known_content(0x8000_0002, &v[..v.len() - 1]).unwrap();
        assert_eq!(k.primary, &[1]);
    }

    /// A UEFI_GPT_DATA event with a header of `hsize` bytes and the partitions `parts`
    /// (first LBA, last LBA, name), disk GUID bytes 0x11, type GUID bytes 0x22, unique GUID
    /// bytes 0x30 + index.
    fn gpt_event(hsize: usize, parts: &[(u64, u64, &str)]) -> Vec<u8> {
        let mut v = alloc::vec![0u8; hsize];
        v[56..72].fill(0x11);
        v[84..88].copy_from_slice(&128u32.to_le_bytes());
        v.extend_from_slice(&(parts.len() as u64).to_le_bytes());
        for (i, (first, last, name)) in parts.iter().enumerate() {
            let mut e = alloc::vec![0u8; 128];
            e[..16].fill(0x22);
            e[16..32].fill(0x30 + i as u8);
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
            for (k, u) in name.encode_utf16().enumerate() {
                e[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
            }
            v.extend_from_slice(&e);
        }
        v
    }

    #[test]
    fn gpt_headers_packed_and_padded_both_decode() {
        use crate::payload::{Partition, Payload, decode_data};
        let parts = [(2048, 1_050_623, "EFI"), (1_050_624, 4_000_000, "root")];
        for hsize in [92, 96] {
            let v = gpt_event(hsize, &parts);
            assert_eq!(
                describe(0x8000_0006, &v),
                "disk 11111111-1111-1111-1111-111111111111 with 2 partitions: EFI, root"
            );
            let Payload::Gpt {
                disk_guid,
                partitions,
            } = decode_data(0x8000_0006, &v)
            else {
                panic!("not decoded as GPT ({hsize}-byte header)");
            };
            assert_eq!(disk_guid, "11111111-1111-1111-1111-111111111111");
            assert_eq!(
                partitions[1],
                Partition {
                    type_guid: "22222222-2222-2222-2222-222222222222".into(),
                    unique_guid: "31313131-3131-3131-3131-313131313131".into(),
                    first_lba: 1_050_624,
                    last_lba: 4_000_000,
                    name: "root".into(),
                }
            );
            assert_eq!(partitions.len(), 2);
            // One byte too many or too few: the entries no longer fill the event.
            let mut long = v.clone();
            long.push(0);
            for bad in [&long[..], &v[..v.len() - 1]] {
                assert!(describe(0x8000_0006, bad).starts_with("malformed UEFI_GPT_DATA"));
                assert!(matches!(decode_data(0x8000_0006, bad), Payload::Raw { .. }));
            }
        }
        assert!(matches!(
            decode_data(0x8000_0006, &[0; 91]),
            Payload::Raw { .. }
        ));
    }

    #[test]
    fn sp800_155_platform_id_decodes_alike_in_both_forms() {
        use crate::payload::{Payload, decode_data};
        let mut v = b"SP800-155 Event\0".to_vec();
        v.extend_from_slice(&11129u32.to_le_bytes());
        v.extend_from_slice(&[0x44; 16]);
        for s in ["vendor", "model", "v1"] {
            v.push(s.len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        assert_eq!(
            describe(3, &v),
            "SP800-155 platform id: vendor 11129, manifest \
             44444444-4444-4444-4444-444444444444, \"vendor\" \"model\" \"v1\""
        );
        assert_eq!(
            decode_data(3, &v),
            Payload::Sp800155PlatformId {
                vendor_id: 11129,
                reference_manifest_guid: "44444444-4444-4444-4444-444444444444".into(),
                strings: alloc::vec!["vendor".into(), "model".into(), "v1".into()],
            }
        );
        let cut = &v[..v.len() - 1];
        assert_eq!(
            describe(3, cut),
            format!("SP800-155 event ({} bytes)", cut.len())
        );
        assert!(matches!(decode_data(3, cut), Payload::Raw { .. }));
    }

    #[test]
    fn describe_never_panics_on_short_payloads() {
        for t in [
            3u32,
            4,
            8,
            0x8000_0001,
            0x8000_0003,
            0x8000_0006,
            0x8000_0008,
            0x8000_0009,
        ] {
            for n in 0..100 {
                let _ = describe(t, &alloc::vec![0xffu8; n]);
            }
        }
    }
}
