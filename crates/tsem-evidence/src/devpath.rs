//! EFI device paths (UEFI 2.10 §10.3) in the UEFI text form (§10.6), as far as the node types that
//! appear in boot logs go; any other node is shown as `Path(type,subtype,hex)`.
//!
//! Device paths come from untrusted event data: a malformed node ends the rendering, and the text
//! decoded so far comes back with the reason.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::efi::{guid, utf16};
use crate::reader::Reader;

/// Device paths in real logs have a handful of nodes; the cap keeps hostile input cheap.
const MAX_NODES: usize = 256;

/// A device path rendered as text, and why the rendering stopped early, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePath {
    /// `PciRoot(0x0)/Pci(0x1,0x1)/…/\EFI\BOOT\BOOTX64.EFI`; instances are separated by `,`.
    pub text: String,
    /// The last file-path node, if any (what a human looks for).
    pub file: Option<String>,
    /// Why decoding stopped before the end node, if it did.
    pub error: Option<String>,
}

/// Render `b`.
pub fn decode(b: &[u8]) -> DevicePath {
    let mut text = String::new();
    let mut file = None;
    let mut at = 0usize;
    let mut sep = "";
    let mut error = None;
    for _ in 0..MAX_NODES {
        let node = b.get(at..).unwrap_or(&[]);
        if node.is_empty() {
            error = Some(format!("no end node (byte {at})"));
            break;
        }
        let mut r = Reader::new(node);
        let (Ok(ty), Ok(sub), Ok(len)) = (r.u8(), r.u8(), r.u16_le()) else {
            error = Some(format!("node header truncated at byte {at}"));
            break;
        };
        let len = usize::from(len);
        let Some(body) = node.get(4..len).filter(|_| len >= 4) else {
            error = Some(format!(
                "node at byte {at}: length {len} (header 4, {} bytes left)",
                node.len()
            ));
            break;
        };
        match (ty, sub) {
            (0x7f, 0xff) => {
                if at + len != b.len() {
                    error = Some(format!("{} bytes after the end node", b.len() - (at + len)));
                }
                return DevicePath { text, file, error };
            }
            (0x7f, 0x01) => {
                sep = "";
                text.push(',');
            }
            _ => {
                let n = node_text(ty, sub, body);
                if (ty, sub) == (0x04, 0x04) {
                    file = Some(n.clone());
                }
                text.push_str(sep);
                text.push_str(&n);
                sep = "/";
            }
        }
        at += len;
    }
    if error.is_none() {
        error = Some(format!("more than {MAX_NODES} nodes"));
    }
    DevicePath { text, file, error }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn guid_at(b: &[u8], at: usize) -> Option<String> {
    let g: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(guid(&g))
}

/// One node; a body too short for its type falls back to the generic form.
fn node_text(ty: u8, sub: u8, body: &[u8]) -> String {
    node_known(ty, sub, body).unwrap_or_else(|| format!("Path({ty},{sub},{})", hex(body)))
}

fn node_known(ty: u8, sub: u8, body: &[u8]) -> Option<String> {
    let mut r = Reader::new(body);
    Some(match (ty, sub) {
        (0x01, 0x01) => {
            let (func, dev) = (r.u8().ok()?, r.u8().ok()?);
            format!("Pci(0x{dev:x},0x{func:x})")
        }
        (0x01, 0x03) => {
            let (t, s, e) = (r.u32_le().ok()?, r.u64_le().ok()?, r.u64_le().ok()?);
            format!("MemoryMapped(0x{t:x},0x{s:x},0x{e:x})")
        }
        (0x01, 0x04) => format!("VenHw({})", guid_at(body, 0)?),
        (0x01, 0x05) => format!("Ctrl(0x{:x})", r.u32_le().ok()?),
        (0x02, 0x01) => {
            let (hid, uid) = (r.u32_le().ok()?, r.u32_le().ok()?);
            match hid {
                0x0a03_41d0 => format!("PciRoot(0x{uid:x})"),
                0x0a08_41d0 => format!("PcieRoot(0x{uid:x})"),
                _ => format!("Acpi(0x{hid:08x},0x{uid:x})"),
            }
        }
        (0x03, 0x01) => {
            let (ps, ms, lun) = (r.u8().ok()?, r.u8().ok()?, r.u16_le().ok()?);
            format!("Ata(0x{ps:x},0x{ms:x},0x{lun:x})")
        }
        (0x03, 0x02) => {
            let (pun, lun) = (r.u16_le().ok()?, r.u16_le().ok()?);
            format!("Scsi(0x{pun:x},0x{lun:x})")
        }
        (0x03, 0x05) => {
            let (port, iface) = (r.u8().ok()?, r.u8().ok()?);
            format!("USB(0x{port:x},0x{iface:x})")
        }
        (0x03, 0x0a) => format!("VenMsg({})", guid_at(body, 0)?),
        (0x03, 0x0b) => {
            let mac = r.take(32).ok()?;
            let if_type = r.u8().ok()?;
            // Ethernet and the like: 6 address bytes; the field is padded to 32.
            let n = if if_type <= 1 { 6 } else { 32 };
            format!("MAC({},0x{if_type:x})", hex(mac.get(..n)?))
        }
        (0x03, 0x0c) => {
            let local = r.array::<4>().ok()?;
            let remote = r.array::<4>().ok()?;
            let ip = |a: [u8; 4]| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
            format!("IPv4({},{})", ip(remote), ip(local))
        }
        (0x03, 0x12) => {
            let (hba, pmp, lun) = (r.u16_le().ok()?, r.u16_le().ok()?, r.u16_le().ok()?);
            format!("Sata(0x{hba:x},0x{pmp:x},0x{lun:x})")
        }
        (0x03, 0x17) => {
            let ns = r.u32_le().ok()?;
            let eui = r.take(8).ok()?;
            let eui: Vec<String> = eui.iter().rev().map(|x| format!("{x:02X}")).collect();
            format!("NVMe(0x{ns:x},{})", eui.join("-"))
        }
        (0x03, 0x18) => format!("Uri({})", crate::efi::ascii(body)),
        (0x03, 0x1a) => format!("SD(0x{:x})", r.u8().ok()?),
        (0x03, 0x1d) => format!("eMMC(0x{:x})", r.u8().ok()?),
        (0x04, 0x01) => {
            let part = r.u32_le().ok()?;
            let (start, size) = (r.u64_le().ok()?, r.u64_le().ok()?);
            let sig = r.take(16).ok()?;
            let (_mbr_type, sig_type) = (r.u8().ok()?, r.u8().ok()?);
            let sig = match sig_type {
                1 => format!(
                    "MBR,0x{:08x}",
                    u32::from_le_bytes(sig.get(..4)?.try_into().ok()?)
                ),
                2 => format!("GPT,{}", guid_at(sig, 0)?),
                _ => format!("{sig_type},{}", hex(sig)),
            };
            format!("HD({part},{sig},0x{start:x},0x{size:x})")
        }
        (0x04, 0x02) => {
            let (entry, start, size) = (r.u32_le().ok()?, r.u64_le().ok()?, r.u64_le().ok()?);
            format!("CDROM(0x{entry:x},0x{start:x},0x{size:x})")
        }
        (0x04, 0x03) => format!("VenMedia({})", guid_at(body, 0)?),
        (0x04, 0x04) => utf16(body),
        (0x04, 0x05) => format!("Media({})", guid_at(body, 0)?),
        (0x04, 0x06) => format!("FvFile({})", guid_at(body, 0)?),
        (0x04, 0x07) => format!("Fv({})", guid_at(body, 0)?),
        (0x04, 0x08) => {
            let (_reserved, s, e) = (r.u32_le().ok()?, r.u64_le().ok()?, r.u64_le().ok()?);
            format!("Offset(0x{s:x},0x{e:x})")
        }
        (0x05, 0x01) => {
            let (t, _status) = (r.u16_le().ok()?, r.u16_le().ok()?);
            format!("BBS(0x{t:x},{})", crate::efi::ascii(r.rest()))
        }
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(ty: u8, sub: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty, sub];
        v.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn boot_entry_path_renders_in_uefi_text_form() {
        let mut p = node(2, 1, &[0xd0, 0x41, 0x03, 0x0a, 0, 0, 0, 0]);
        p.extend(node(1, 1, &[1, 3]));
        let mut hd = 1u32.to_le_bytes().to_vec();
        hd.extend_from_slice(&0x800u64.to_le_bytes());
        hd.extend_from_slice(&0x10_0000u64.to_le_bytes());
        hd.extend_from_slice(&[0x11; 16]);
        hd.extend_from_slice(&[2, 2]);
        p.extend(node(4, 1, &hd));
        let f: Vec<u8> = "\\EFI\\BOOT\\BOOTX64.EFI\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        p.extend(node(4, 4, &f));
        p.extend(node(0x7f, 0xff, &[]));
        let d = decode(&p);
        assert_eq!(
            d.text,
            "PciRoot(0x0)/Pci(0x3,0x1)/HD(1,GPT,11111111-1111-1111-1111-111111111111,0x800,0x100000)/\\EFI\\BOOT\\BOOTX64.EFI"
        );
        assert_eq!(d.file.as_deref(), Some("\\EFI\\BOOT\\BOOTX64.EFI"));
        assert_eq!(d.error, None);
        // Cut anywhere: a prefix and a reason, never a panic.
        for n in 0..p.len() {
            let d = decode(&p[..n]);
            assert!(d.error.is_some(), "{n}");
            assert!(d.text.len() <= 200);
        }
    }
}
