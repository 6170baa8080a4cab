//! One-line human descriptions of events, for forensics listings and model diffs.

use tsem_core::event::{Cell, Event, SockAddr};

/// `type process=… <the CELL's most telling field>`.
pub fn one_line(ev: &Event) -> String {
    let h = &ev.header;
    let detail = match &ev.cell {
        Cell::File(f) | Cell::FileCmd { file: f, .. } | Cell::KernelReadFile { file: f, .. } => {
            format!("{} digest={}", f.path.pathname, short(&f.digest.to_hex()))
        }
        Cell::MmapFile {
            file: Some(f),
            prot,
            ..
        } => format!("{} prot={prot}", f.path.pathname),
        Cell::MmapFile {
            file: None, prot, ..
        } => format!("anonymous prot={prot}"),
        Cell::SockAddr { addr: Some(a), .. } => match a {
            SockAddr::Inet { port, address } => {
                let ip = address.to_le_bytes();
                format!(
                    "{}.{}.{}.{}:{}",
                    ip[0],
                    ip[1],
                    ip[2],
                    ip[3],
                    u16::from_be(*port)
                )
            }
            SockAddr::Inet6 { port, .. } => format!("inet6 port {}", u16::from_be(*port)),
            SockAddr::Unix { address } => format!("unix:{address}"),
            SockAddr::Other { address } => format!("other:{}", short(&address.to_hex())),
        },
        Cell::SocketCreate {
            family,
            sock_type,
            protocol,
            ..
        } => format!("family={family} type={sock_type} protocol={protocol}"),
        Cell::TaskKill { target, sig, .. } => {
            format!("sig={sig} target={}", short(&target.to_hex()))
        }
        Cell::Capable { cap, .. } => format!("cap={cap}"),
        Cell::InodeGetattr(d) | Cell::Dentry(d) => d.path.pathname.to_string(),
        Cell::InodeCreate { dentry, mode, .. } => {
            format!("{} mode=0{mode:o}", dentry.path.pathname)
        }
        Cell::InodeDirEntry { dentry, .. } => dentry.path.pathname.to_string(),
        Cell::InodeSetattr { dentry, valid, .. } => {
            format!("{} valid={valid}", dentry.path.pathname)
        }
        Cell::InodeRename(r) => format!(
            "{} -> {}",
            r.old_dentry.path.pathname, r.new_dentry.path.pathname
        ),
        other => {
            let s = format!("{other:?}");
            s.chars().take(80).collect()
        }
    };
    format!("{} process={} {detail}", h.event_type.name(), h.process)
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}
