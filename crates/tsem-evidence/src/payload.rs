//! Event payloads decoded into structures for machines (`tsem eventlog replay --json`, `show
//! --json`): EFI variables, image loads with their device paths, firmware blobs, handoff tables,
//! GPT, separators, strings (S-CRTM version, POST codes, actions, IPL command lines), and the
//! `EV_NO_ACTION` kinds.
//!
//! Payloads are untrusted and often quirky. A payload that does not decode as its event type says
//! becomes [`Payload::Raw`]: its bytes in hex with the reason, never an error, never a panic. The
//! digests, not the payloads, are what the TPM extended, so nothing here affects the replay.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::devpath;
use crate::efi::{VariableData, gpt_entries, guid, utf16};
use crate::eventlog::{Event, SpecIdEvent, alg_label};
use crate::reader::Reader;

/// One decoded payload. Serialized with a `kind` tag; addresses are hex strings (JSON numbers
/// lose precision above 2^53), byte strings are hex.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// The crypto-agile header.
    SpecId {
        /// `platformClass`.
        platform_class: u32,
        /// `major.minor` and errata, e.g. `2.0 errata 0`.
        spec_version: String,
        /// `uintnSize`.
        uintn_size: u8,
        /// The declared banks.
        algorithms: Vec<SpecAlgorithm>,
        /// `vendorInfo`, hex.
        vendor_info: String,
    },
    /// `EV_NO_ACTION` StartupLocality: PCR 0's initial locality.
    StartupLocality {
        /// The locality.
        locality: u8,
    },
    /// `EV_NO_ACTION` SP800-155 platform id event.
    Sp800155PlatformId {
        /// `PlatformManufacturerId` (an IANA enterprise number).
        vendor_id: u32,
        /// `ReferenceManifestGuid`.
        reference_manifest_guid: String,
        /// Platform manufacturer, model and version strings.
        strings: Vec<String>,
    },
    /// Another `EV_NO_ACTION` event with a 16-byte signature (NvIndexInstance, …).
    NoAction {
        /// The signature, NUL-trimmed.
        signature: String,
        /// The whole data, hex.
        data: String,
    },
    /// `EV_SEPARATOR`.
    Separator {
        /// The 4 bytes, hex.
        value: String,
        /// `ffffffff`: the firmware hit an error.
        error: bool,
    },
    /// A string (S-CRTM version, POST code, EFI action, IPL, …).
    Text {
        /// `utf-8` or `utf-16le`.
        encoding: &'static str,
        /// The text, without its terminating NULs.
        text: String,
    },
    /// `UEFI_VARIABLE_DATA`.
    Variable {
        /// `VariableName`, the vendor GUID.
        guid: String,
        /// `UnicodeName`.
        name: String,
        /// `VariableData`, hex.
        data: String,
        /// What the data means, for the variables tsem knows.
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<VariableValue>,
        /// Set when `VariableDataLength` disagrees with the event size; `data` is then the bytes
        /// after the name.
        #[serde(skip_serializing_if = "Option::is_none")]
        size_mismatch: Option<String>,
    },
    /// A GUID (an S-CRTM version may be one).
    Guid {
        /// The GUID.
        guid: String,
    },
    /// `UEFI_IMAGE_LOAD_EVENT`.
    ImageLoad {
        /// `ImageLocationInMemory`.
        address: String,
        /// `ImageLengthInMemory`.
        length: u64,
        /// `ImageLinkTimeAddress`.
        link_time_address: String,
        /// The device path, UEFI text form.
        device_path: String,
        /// Its last file-path node.
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        /// Why the device path stopped decoding, if it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        device_path_error: Option<String>,
    },
    /// `UEFI_PLATFORM_FIRMWARE_BLOB` (and `…BLOB2`, which adds a description).
    FirmwareBlob {
        /// `BlobDescription` of the BLOB2 form.
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// `BlobBase`.
        base: String,
        /// `BlobLength`.
        length: u64,
    },
    /// `UEFI_HANDOFF_TABLE_POINTERS` (and `…2`, which adds a description).
    HandoffTables {
        /// `TableDescription` of the form 2.
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// `{guid, address}` of each table.
        tables: Vec<HandoffTable>,
    },
    /// `UEFI_GPT_DATA`.
    Gpt {
        /// `DiskGUID`.
        disk_guid: String,
        /// The partition entries.
        partitions: Vec<Partition>,
    },
    /// `TCG_PCClientTaggedEvent` (`EV_EVENT_TAG`; systemd-stub uses it for load options).
    TaggedEvent {
        /// `taggedEventID`.
        tag_id: u32,
        /// The tagged data as text, if it is text (UTF-8 or UTF-16LE).
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The tagged data, hex.
        data: String,
    },
    /// Bytes that do not decode as the event type says.
    Raw {
        /// Why they were not decoded.
        reason: String,
        /// The bytes, hex.
        data: String,
    },
}

/// One bank of the Spec ID event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecAlgorithm {
    /// `sha256`, or `0x00fe` for an algorithm tsem does not know.
    pub algorithm: String,
    /// Digest size.
    pub digest_size: u16,
}

/// One `EFI_CONFIGURATION_TABLE`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HandoffTable {
    /// `VendorGuid`.
    pub guid: String,
    /// `VendorTable`.
    pub address: String,
}

/// One GPT partition entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Partition {
    /// `PartitionTypeGUID`.
    pub type_guid: String,
    /// `UniquePartitionGUID`.
    pub unique_guid: String,
    /// `StartingLBA`.
    pub first_lba: u64,
    /// `EndingLBA`.
    pub last_lba: u64,
    /// `PartitionName`.
    pub name: String,
}

/// The meaning of a known variable's data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum VariableValue {
    /// `SecureBoot`, `SetupMode`, `AuditMode`, `DeployedMode`, …: one byte.
    Flag(u8),
    /// `BootOrder`: `Boot####` numbers.
    BootOrder(Vec<String>),
    /// `Boot####`: an `EFI_LOAD_OPTION`.
    LoadOption {
        /// `Attributes`.
        attributes: u32,
        /// `Description`.
        description: String,
        /// `FilePathList`, UEFI text form.
        device_path: String,
        /// Why it stopped decoding, if it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        device_path_error: Option<String>,
        /// `OptionalData`, hex.
        optional_data: String,
    },
    /// `PK`, `KEK`, `db`, `dbx`, `MokList`…: `EFI_SIGNATURE_LIST`s.
    SignatureLists(Vec<SignatureList>),
}

/// One `EFI_SIGNATURE_LIST`, summarized.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureList {
    /// `x509`, `sha256`, … or the `SignatureType` GUID.
    pub signature_type: String,
    /// `SignatureSize` (owner GUID included).
    pub signature_size: u32,
    /// Number of signatures.
    pub signatures: usize,
    /// The distinct `SignatureOwner` GUIDs.
    pub owners: Vec<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn raw(reason: impl Into<String>, data: &[u8]) -> Payload {
    Payload::Raw {
        reason: reason.into(),
        data: hex(data),
    }
}

/// Decode `ev`'s payload; `spec_id` is the log's header, shown for record 0.
pub fn decode(ev: &Event<'_>, spec_id: Option<&SpecIdEvent<'_>>) -> Payload {
    if ev.index == 0
        && let Some(s) = spec_id
    {
        return Payload::SpecId {
            platform_class: s.platform_class,
            spec_version: format!(
                "{}.{} errata {}",
                s.spec_version_major, s.spec_version_minor, s.spec_errata
            ),
            uintn_size: s.uintn_size,
            algorithms: s
                .algorithms
                .iter()
                .map(|a| SpecAlgorithm {
                    algorithm: alg_label(a.alg_id),
                    digest_size: a.digest_size,
                })
                .collect(),
            vendor_info: hex(s.vendor_info),
        };
    }
    decode_data(ev.event_type, ev.data)
}

/// Decode event data of type `event_type`.
pub fn decode_data(event_type: u32, data: &[u8]) -> Payload {
    match event_type {
        0x0000_0003 => no_action(data),
        0x0000_0004 => match data {
            [a, b, c, d] => Payload::Separator {
                value: hex(data),
                error: [*a, *b, *c, *d] == [0xff; 4],
            },
            _ => raw(
                format!("a separator is 4 bytes, this has {}", data.len()),
                data,
            ),
        },
        0x8000_0001 | 0x8000_0002 | 0x8000_000C | 0x8000_00E0 => variable(data),
        0x8000_0003..=0x8000_0005 => image(data),
        0x8000_0006 => gpt(data),
        0x8000_0008 => blob(data, false),
        0x8000_000A => blob(data, true),
        0x8000_0009 => handoff(data, false),
        0x0000_0006 => tagged(data),
        0x8000_000B => handoff(data, true),
        // PFP: the S-CRTM version is a UCS-2 string or a GUID.
        0x0000_0008 => match (text(data), <[u8; 16]>::try_from(data)) {
            (Ok(t), _) => t,
            (Err(_), Ok(g)) => Payload::Guid { guid: guid(&g) },
            (Err(why), _) => raw(why, data),
        },
        // EV_POST_CODE is a string or a firmware blob; EV_S_CRTM_CONTENTS likewise.
        0x0000_0001 | 0x0000_0007 => match text(data) {
            Ok(t) => t,
            Err(_) if data.len() == 16 => blob(data, false),
            Err(why) => raw(why, data),
        },
        _ => match text(data) {
            Ok(t) => t,
            Err(why) => raw(why, data),
        },
    }
}

/// A string, UTF-8 or UTF-16LE, with NULs only at its end and no control characters but
/// tab, CR and LF: what firmware, grub and systemd-stub log as strings.
fn text(data: &[u8]) -> Result<Payload, String> {
    if data.is_empty() {
        return Err("empty".into());
    }
    let clean =
        |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_control() && !"\t\r\n".contains(c));
    if data.iter().all(|&b| b == 0) && data.len() == 2 {
        // An empty UCS-2 string: what some firmware logs as its S-CRTM version.
        return Ok(Payload::Text {
            encoding: "utf-16le",
            text: String::new(),
        });
    }
    // UTF-16LE: an ASCII first character makes its second byte zero, which no UTF-8 text has.
    if data.len() >= 4 && data[1] == 0 && data[0] != 0 {
        // Trailing NULs, in any number (odd ones too: systemd-boot logs one byte more).
        let mut end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        if end % 2 == 1 {
            end += 1;
        }
        let units: Vec<u16> = data
            .get(..end)
            .unwrap_or(data)
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if units.contains(&0) {
            return Err("UTF-16 text with data after its NUL".into());
        }
        return match String::from_utf16(&units) {
            Ok(s) if clean(&s) => Ok(Payload::Text {
                encoding: "utf-16le",
                text: s,
            }),
            _ => Err("not UTF-16 text".into()),
        };
    }
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let body = data.get(..end).unwrap_or(data);
    match core::str::from_utf8(body) {
        Ok(s) if clean(s) => Ok(Payload::Text {
            encoding: "utf-8",
            text: s.into(),
        }),
        Ok(_) => Err("not text: control characters or NUL inside".into()),
        Err(e) => Err(format!(
            "not text: invalid UTF-8 at byte {}",
            e.valid_up_to()
        )),
    }
}

/// `text` for a terminal: control characters (tab, CR, LF included) as `\u{…}` escapes, at most
/// 512 characters, `…` when cut.
pub fn escape(text: &str) -> String {
    let mut s = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 512 {
            s.push('…');
            break;
        }
        if c.is_control() {
            s.extend(c.escape_unicode());
        } else {
            s.push(c);
        }
    }
    s
}

fn tagged(data: &[u8]) -> Payload {
    let mut r = Reader::new(data);
    let (Ok(tag_id), Ok(n)) = (r.u32_le(), r.u32_le()) else {
        return raw(
            "TCG_PCClientTaggedEvent shorter than its 8-byte header",
            data,
        );
    };
    match r.take(u64::from(n)) {
        Ok(d) if r.is_empty() => Payload::TaggedEvent {
            tag_id,
            text: match text(d) {
                Ok(Payload::Text { text, .. }) => Some(text),
                _ => None,
            },
            data: hex(d),
        },
        _ => raw(
            format!("taggedEventDataSize {n} does not fill the event"),
            data,
        ),
    }
}

fn no_action(data: &[u8]) -> Payload {
    if data.len() == 17 && data.starts_with(b"StartupLocality\0") {
        return Payload::StartupLocality { locality: data[16] };
    }
    if data.starts_with(b"SP800-155 Event") {
        return match crate::efi::sp800_155(data) {
            Some((vendor_id, g, strings)) => Payload::Sp800155PlatformId {
                vendor_id,
                reference_manifest_guid: guid(&g),
                strings,
            },
            None => raw("truncated SP800-155 platform id event", data),
        };
    }
    if let Some(sig) = data.get(..16)
        && sig.iter().all(|&c| c == 0 || (0x20..0x7f).contains(&c))
        && sig.first().is_some_and(|c| c.is_ascii_alphabetic())
    {
        return Payload::NoAction {
            signature: crate::efi::ascii(sig),
            data: hex(data),
        };
    }
    match text(data) {
        Ok(t) => t,
        Err(_) => raw("EV_NO_ACTION data without a known signature", data),
    }
}

fn variable(data: &[u8]) -> Payload {
    if let Some(v) = VariableData::parse(data) {
        let name = v.name();
        let value = variable_value(&name, v.data);
        return Payload::Variable {
            guid: guid(&v.guid),
            name,
            data: hex(v.data),
            value,
            size_mismatch: None,
        };
    }
    // Some shims log a VariableDataLength that does not match the bytes that follow: show the
    // name and the bytes there are, and say so.
    let mut r = Reader::new(data);
    let parsed = (|| {
        let g = r.array::<16>().ok()?;
        let name_len = r.u64_le().ok()?;
        let data_len = r.u64_le().ok()?;
        let name = r.take(name_len.checked_mul(2)?).ok()?;
        Some((g, name, data_len))
    })();
    match parsed {
        Some((g, name, data_len)) => Payload::Variable {
            guid: guid(&g),
            name: utf16(name),
            data: hex(r.rest()),
            value: None,
            size_mismatch: Some(format!(
                "VariableDataLength {data_len}, but {} bytes follow the name",
                r.remaining()
            )),
        },
        None => raw(
            "not a UEFI_VARIABLE_DATA: the header or the name runs past the event",
            data,
        ),
    }
}

const X509_GUID: [u8; 16] = [
    0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72,
];
const SHA256_GUID: [u8; 16] = [
    0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28,
];

fn variable_value(name: &str, d: &[u8]) -> Option<VariableValue> {
    match name {
        "SecureBoot" | "SetupMode" | "AuditMode" | "DeployedMode" | "MokSBState"
            if d.len() == 1 =>
        {
            d.first().map(|&b| VariableValue::Flag(b))
        }
        "BootOrder" if d.len().is_multiple_of(2) => Some(VariableValue::BootOrder(
            d.chunks_exact(2)
                .map(|c| format!("{:04X}", u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        )),
        "PK" | "KEK" | "db" | "dbx" | "dbt" | "dbr" | "MokList" | "MokListX" => {
            signature_lists(d).map(VariableValue::SignatureLists)
        }
        _ if name.len() == 8
            && name.starts_with("Boot")
            && name[4..].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            load_option(d)
        }
        _ => None,
    }
}

/// `EFI_LOAD_OPTION`: Attributes u32, FilePathListLength u16, Description (UTF-16, NUL-ended),
/// FilePathList, OptionalData.
fn load_option(d: &[u8]) -> Option<VariableValue> {
    let mut r = Reader::new(d);
    let attributes = r.u32_le().ok()?;
    let fp_len = r.u16_le().ok()?;
    let rest = r.rest();
    let mut end = 0;
    loop {
        let c = rest.get(end..end + 2)?;
        end += 2;
        if c == [0, 0] {
            break;
        }
    }
    let description = utf16(rest.get(..end)?);
    let fp = rest.get(end..end + usize::from(fp_len))?;
    let optional = rest.get(end + usize::from(fp_len)..)?;
    let dp = devpath::decode(fp);
    Some(VariableValue::LoadOption {
        attributes,
        description,
        device_path: dp.text,
        device_path_error: dp.error,
        optional_data: hex(optional),
    })
}

/// `EFI_SIGNATURE_LIST`s filling `d` exactly, or None.
fn signature_lists(d: &[u8]) -> Option<Vec<SignatureList>> {
    let mut r = Reader::new(d);
    let mut out = Vec::new();
    while !r.is_empty() {
        let ty = r.array::<16>().ok()?;
        let list_size = r.u32_le().ok()?;
        let header_size = r.u32_le().ok()?;
        let sig_size = r.u32_le().ok()?;
        let body_len = u64::from(list_size).checked_sub(28 + u64::from(header_size))?;
        r.take(u64::from(header_size)).ok()?;
        let body = r.take(body_len).ok()?;
        if sig_size < 16 || body_len % u64::from(sig_size) != 0 {
            return None;
        }
        let mut owners: Vec<String> = Vec::new();
        let mut n = 0;
        for s in body.chunks_exact(sig_size as usize) {
            n += 1;
            let g = guid(s.get(..16)?.try_into().ok()?);
            if !owners.contains(&g) && owners.len() < 64 {
                owners.push(g);
            }
        }
        let signature_type = match ty {
            X509_GUID => "x509".into(),
            SHA256_GUID => "sha256".into(),
            _ => guid(&ty),
        };
        out.push(SignatureList {
            signature_type,
            signature_size: sig_size,
            signatures: n,
            owners,
        });
    }
    Some(out)
}

fn image(data: &[u8]) -> Payload {
    let mut r = Reader::new(data);
    let (Ok(addr), Ok(len), Ok(link), Ok(dp_len)) =
        (r.u64_le(), r.u64_le(), r.u64_le(), r.u64_le())
    else {
        return raw(
            "UEFI_IMAGE_LOAD_EVENT shorter than its 32-byte header",
            data,
        );
    };
    let (dp, extra) = match r.take(dp_len) {
        Ok(dp) => (devpath::decode(dp), r.remaining()),
        Err(_) => {
            // Keep what there is; the device path length is what is wrong.
            let mut d = devpath::decode(r.rest());
            d.error = Some(format!(
                "LengthOfDevicePath {dp_len} but {} bytes follow",
                r.remaining()
            ));
            (d, 0)
        }
    };
    let error = match (dp.error, extra) {
        (e, 0) => e,
        (Some(e), n) => Some(format!("{e}; {n} bytes after the device path")),
        (None, n) => Some(format!("{n} bytes after the device path")),
    };
    Payload::ImageLoad {
        address: format!("0x{addr:x}"),
        length: len,
        link_time_address: format!("0x{link:x}"),
        device_path: dp.text,
        file: dp.file,
        device_path_error: error,
    }
}

/// A `u8`-length-prefixed description (the `…2` forms of blobs and handoff tables).
fn description(r: &mut Reader<'_>) -> Option<String> {
    let n = r.u8().ok()?;
    Some(crate::efi::ascii(r.take(u64::from(n)).ok()?))
}

fn blob(data: &[u8], with_description: bool) -> Payload {
    let mut r = Reader::new(data);
    let description = if with_description {
        match description(&mut r) {
            Some(d) => Some(d),
            None => return raw("blob description runs past the event", data),
        }
    } else {
        None
    };
    match (r.u64_le(), r.u64_le(), r.is_empty()) {
        (Ok(base), Ok(length), true) => Payload::FirmwareBlob {
            description,
            base: format!("0x{base:x}"),
            length,
        },
        _ => raw(
            "not a UEFI_PLATFORM_FIRMWARE_BLOB: base and length are 16 bytes",
            data,
        ),
    }
}

fn handoff(data: &[u8], with_description: bool) -> Payload {
    let mut r = Reader::new(data);
    let description = if with_description {
        match description(&mut r) {
            Some(d) => Some(d),
            None => return raw("table description runs past the event", data),
        }
    } else {
        None
    };
    let Ok(n) = r.u64_le() else {
        return raw("no table count", data);
    };
    if n.checked_mul(24) != Some(r.remaining() as u64) {
        return raw(
            format!("{n} tables do not fill the {} bytes left", r.remaining()),
            data,
        );
    }
    let mut tables = Vec::new();
    while let (Ok(g), Ok(a)) = (r.array::<16>(), r.u64_le()) {
        tables.push(HandoffTable {
            guid: guid(&g),
            address: format!("0x{a:x}"),
        });
    }
    Payload::HandoffTables {
        description,
        tables,
    }
}

fn gpt(data: &[u8]) -> Payload {
    if data.len() < 92 {
        return raw("shorter than a GPT header", data);
    }
    let Some((dg, entries)) = gpt_entries(data) else {
        return raw(
            "not a UEFI_GPT_DATA: the partition entries do not fill the event",
            data,
        );
    };
    let partitions = entries
        .map(|e| {
            let g = |at: usize| guid(e[at..at + 16].try_into().unwrap_or(&[0; 16]));
            let lba = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().unwrap_or([0; 8]));
            Partition {
                type_guid: g(0),
                unique_guid: g(16),
                first_lba: lba(32),
                last_lba: lba(40),
                name: utf16(&e[56..128]),
            }
        })
        .collect();
    Payload::Gpt {
        disk_guid: guid(&dg),
        partitions,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strings_in_both_encodings_and_what_is_not_a_string() {
        let t = |d: &[u8]| decode_data(0x0D, d);
        assert_eq!(
            t(b"grub_cmd: linux /vmlinuz root=/dev/sda1\0"),
            Payload::Text {
                encoding: "utf-8",
                text: "grub_cmd: linux /vmlinuz root=/dev/sda1".into()
            }
        );
        let u: Vec<u8> = "initrd=\\initrd.img quiet\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            t(&u),
            Payload::Text {
                encoding: "utf-16le",
                text: "initrd=\\initrd.img quiet".into()
            }
        );
        match t(&[0x30, 0x82, 0x01, 0x00, 0xff]) {
            Payload::Raw { reason, data } => {
                assert!(reason.contains("invalid UTF-8"), "{reason}");
                assert_eq!(data, "30820100ff");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(t(b"a\0b"), Payload::Raw { .. }));
        assert!(matches!(decode_data(4, &[1, 2]), Payload::Raw { .. }));
        assert_eq!(
            decode_data(4, &[0xff; 4]),
            Payload::Separator {
                value: "ffffffff".into(),
                error: true
            }
        );
    }

    #[test]
    fn every_decoder_survives_every_prefix_of_junk() {
        let junk: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        for t in [
            1u32,
            3,
            4,
            5,
            6,
            7,
            8,
            0xD,
            0x8000_0001,
            0x8000_0002,
            0x8000_0003,
            0x8000_0006,
            0x8000_0008,
            0x8000_0009,
            0x8000_000A,
            0x8000_000B,
            0x8000_00E0,
        ] {
            for n in 0..junk.len() {
                let _ = decode_data(t, &junk[..n]);
            }
        }
    }
}
