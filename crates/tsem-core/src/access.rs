//! The kernel backstop's access set: which file hierarchies a workload may read, write, execute
//! or change, which TCP ports it may bind or connect to, and which Landlock scopes it needs lifted.
//!
//! A model's coefficients are hashes, so no path can be recovered from them; a learning run
//! therefore also records this set (derived from its events' descriptions) and the model file
//! carries it as `landlock` lines (see `docs/sensor.md`, "Kernel backstop"), from which an
//! enforcing run compiles a Landlock ruleset.
//!
//! The line text is defined here (after the `landlock ` directive word) so that rendering and
//! parsing are one another's inverse byte for byte, which signatures over re-rendered lines need.
//!
//! ```text
//! abi <N>                      the Landlock ABI the set was learned for (always present)
//! fs <right>[,<right>...] <path>
//! tcp-bind <port>
//! tcp-connect <port>
//! unscoped signal | unscoped abstract-unix-socket
//! ```
//!
//! Rights are listed in Landlock's bit order, each once. Paths are absolute; every byte outside
//! `!`..`~` and the backslash itself is written `\xHH` (two lowercase hex digits), so a path may
//! hold any byte but NUL and a line stays printable ASCII without spaces inside the path.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Filesystem access rights, with Landlock's `LANDLOCK_ACCESS_FS_*` bit values.
pub mod fs {
    /// Execute a file.
    pub const EXECUTE: u16 = 1 << 0;
    /// Open a file for writing.
    pub const WRITE_FILE: u16 = 1 << 1;
    /// Open a file for reading.
    pub const READ_FILE: u16 = 1 << 2;
    /// Open a directory to list it.
    pub const READ_DIR: u16 = 1 << 3;
    /// Remove an empty directory.
    pub const REMOVE_DIR: u16 = 1 << 4;
    /// Unlink a file.
    pub const REMOVE_FILE: u16 = 1 << 5;
    /// Create a character device.
    pub const MAKE_CHAR: u16 = 1 << 6;
    /// Create a directory.
    pub const MAKE_DIR: u16 = 1 << 7;
    /// Create a regular file.
    pub const MAKE_REG: u16 = 1 << 8;
    /// Create a Unix socket.
    pub const MAKE_SOCK: u16 = 1 << 9;
    /// Create a named pipe.
    pub const MAKE_FIFO: u16 = 1 << 10;
    /// Create a block device.
    pub const MAKE_BLOCK: u16 = 1 << 11;
    /// Create a symbolic link.
    pub const MAKE_SYM: u16 = 1 << 12;
    /// Link or rename a file from or to another directory.
    pub const REFER: u16 = 1 << 13;
    /// Truncate a file.
    pub const TRUNCATE: u16 = 1 << 14;
    /// ioctl on a device file.
    pub const IOCTL_DEV: u16 = 1 << 15;
    /// Every right above (Landlock ABI 5 to 8).
    pub const ALL: u16 = u16::MAX;
    /// The rights that apply to a non-directory file.
    pub const FILE: u16 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

    /// The rights' names in bit order.
    pub const NAMES: [&str; 16] = [
        "execute",
        "write-file",
        "read-file",
        "read-dir",
        "remove-dir",
        "remove-file",
        "make-char",
        "make-dir",
        "make-reg",
        "make-sock",
        "make-fifo",
        "make-block",
        "make-sym",
        "refer",
        "truncate",
        "ioctl-dev",
    ];
}

/// The Landlock ABI whose rights and scopes a learned set names (the tested ABI; tsem asks the
/// kernel for no more than this).
pub const LEARNED_ABI: u32 = 7;

/// A Landlock scope that a workload needed lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Signals to processes outside the workload (`LANDLOCK_SCOPE_SIGNAL`).
    Signal,
    /// Connections to abstract Unix sockets created outside it
    /// (`LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET`).
    AbstractUnixSocket,
}

impl Scope {
    /// The name in `unscoped` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Scope::Signal => "signal",
            Scope::AbstractUnixSocket => "abstract-unix-socket",
        }
    }
}

/// One `landlock` line's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLine {
    /// `abi N`.
    Abi(u32),
    /// `fs RIGHTS PATH`.
    Fs {
        /// The hierarchy (or file).
        path: Vec<u8>,
        /// The [`fs`] rights.
        rights: u16,
    },
    /// `tcp-bind PORT`.
    TcpBind(u16),
    /// `tcp-connect PORT`.
    TcpConnect(u16),
    /// `unscoped SCOPE`.
    Unscoped(Scope),
}

/// Why a `landlock` line was rejected: the field at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The field (`landlock`, `rights`, `path`, `port`, `scope`, `abi`).
    pub field: &'static str,
    /// What is wrong.
    pub msg: String,
}

fn line_err(field: &'static str, msg: impl Into<String>) -> LineError {
    LineError {
        field,
        msg: msg.into(),
    }
}

/// A workload's access set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSet {
    /// The ABI the set was learned for (0: none recorded, the model has no backstop).
    pub abi: u32,
    /// Rights per path (a rule covers the hierarchy beneath a directory).
    pub fs: BTreeMap<Vec<u8>, u16>,
    /// TCP ports bound.
    pub tcp_bind: BTreeSet<u16>,
    /// TCP ports connected to.
    pub tcp_connect: BTreeSet<u16>,
    /// Scopes lifted.
    pub unscoped: BTreeSet<Scope>,
}

impl AccessSet {
    /// An empty set learned for [`LEARNED_ABI`].
    pub fn learned() -> Self {
        Self {
            abi: LEARNED_ABI,
            ..Self::default()
        }
    }

    /// Whether the set was recorded at all (a model learned before the backstop existed has none).
    pub fn is_recorded(&self) -> bool {
        self.abi != 0
    }

    /// Grant `rights` beneath `path`.
    pub fn grant(&mut self, path: &[u8], rights: u16) {
        if rights != 0 {
            *self.fs.entry(path.to_vec()).or_insert(0) |= rights;
        }
    }

    /// Add one parsed line.
    pub fn add(&mut self, line: &AccessLine) {
        match line {
            AccessLine::Abi(a) => self.abi = self.abi.max(*a),
            AccessLine::Fs { path, rights } => self.grant(path, *rights),
            AccessLine::TcpBind(p) => {
                self.tcp_bind.insert(*p);
            }
            AccessLine::TcpConnect(p) => {
                self.tcp_connect.insert(*p);
            }
            AccessLine::Unscoped(s) => {
                self.unscoped.insert(*s);
            }
        }
    }

    /// The union of two sets (`model merge`, extending a model by learning).
    pub fn union(&mut self, other: &AccessSet) {
        for l in other.lines() {
            self.add(&l);
        }
    }

    /// The lines, in canonical order: abi, paths (by bytes), bind ports, connect ports, scopes.
    /// Nothing when the set was never recorded.
    pub fn lines(&self) -> Vec<AccessLine> {
        if !self.is_recorded() {
            return Vec::new();
        }
        let mut v = alloc::vec![AccessLine::Abi(self.abi)];
        v.extend(self.fs.iter().map(|(p, r)| AccessLine::Fs {
            path: p.clone(),
            rights: *r,
        }));
        v.extend(self.tcp_bind.iter().map(|p| AccessLine::TcpBind(*p)));
        v.extend(self.tcp_connect.iter().map(|p| AccessLine::TcpConnect(*p)));
        v.extend(self.unscoped.iter().map(|s| AccessLine::Unscoped(*s)));
        v
    }
}

impl AccessLine {
    /// The text after `landlock `.
    pub fn render(&self) -> String {
        match self {
            AccessLine::Abi(a) => format!("abi {a}"),
            AccessLine::Fs { path, rights } => {
                format!("fs {} {}", rights_text(*rights), escape_path(path))
            }
            AccessLine::TcpBind(p) => format!("tcp-bind {p}"),
            AccessLine::TcpConnect(p) => format!("tcp-connect {p}"),
            AccessLine::Unscoped(s) => format!("unscoped {}", s.name()),
        }
    }

    /// Parse the text after `landlock `. Only the canonical form is accepted (the one
    /// [`AccessLine::render`] writes), so a signature over re-rendered lines covers the file's
    /// own bytes.
    pub fn parse(text: &str) -> Result<Self, LineError> {
        let (kind, rest) = text
            .split_once(' ')
            .ok_or_else(|| line_err("landlock", "missing value"))?;
        let line = match kind {
            "abi" => {
                let a = number(rest, "abi", u32::MAX.into())?;
                if a == 0 {
                    return Err(line_err("abi", "ABI 0 names no rights"));
                }
                AccessLine::Abi(a as u32)
            }
            "fs" => {
                let (rights, path) = rest
                    .split_once(' ')
                    .ok_or_else(|| line_err("path", "missing path"))?;
                AccessLine::Fs {
                    rights: parse_rights(rights)?,
                    path: unescape_path(path)?,
                }
            }
            "tcp-bind" => AccessLine::TcpBind(number(rest, "port", 65535)? as u16),
            "tcp-connect" => AccessLine::TcpConnect(number(rest, "port", 65535)? as u16),
            "unscoped" => AccessLine::Unscoped(match rest {
                "signal" => Scope::Signal,
                "abstract-unix-socket" => Scope::AbstractUnixSocket,
                other => {
                    let shown: String = other.chars().take(32).collect();
                    return Err(line_err("scope", format!("unknown scope {shown:?}")));
                }
            }),
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(line_err("landlock", format!("unknown kind {shown:?}")));
            }
        };
        if line.render() != text {
            return Err(line_err(
                "landlock",
                "not in canonical form (one space between fields, rights in bit order)",
            ));
        }
        Ok(line)
    }
}

fn number(text: &str, field: &'static str, max: u64) -> Result<u64, LineError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(line_err(field, "not a decimal number"));
    }
    match text.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(line_err(field, format!("larger than {max}"))),
    }
}

/// `execute,read-file`: the names of the set bits in bit order.
pub fn rights_text(rights: u16) -> String {
    let mut s = String::new();
    for (i, name) in fs::NAMES.iter().enumerate() {
        if rights & (1 << i) != 0 {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(name);
        }
    }
    s
}

fn parse_rights(text: &str) -> Result<u16, LineError> {
    let mut rights = 0u16;
    let mut last: Option<usize> = None;
    for name in text.split(',') {
        let Some(i) = fs::NAMES.iter().position(|n| *n == name) else {
            let shown: String = name.chars().take(32).collect();
            return Err(line_err("rights", format!("unknown right {shown:?}")));
        };
        if last.is_some_and(|l| l >= i) {
            return Err(line_err("rights", "rights repeated or not in bit order"));
        }
        last = Some(i);
        rights |= 1 << i;
    }
    Ok(rights)
}

/// A path as written in a line (see the module documentation).
pub fn escape_path(path: &[u8]) -> String {
    let mut s = String::with_capacity(path.len());
    for &b in path {
        if b.is_ascii_graphic() && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

fn unescape_path(text: &str) -> Result<Vec<u8>, LineError> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let hex = b
                .get(i + 1..i + 4)
                .filter(|h| h[0] == b'x')
                .and_then(|h| core::str::from_utf8(&h[1..]).ok())
                .filter(|h| h.bytes().all(|d| matches!(d, b'0'..=b'9' | b'a'..=b'f')))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    line_err(
                        "path",
                        format!("bad escape at byte {i} (want \\x and two lowercase hex digits)"),
                    )
                })?;
            if hex == 0 {
                return Err(line_err("path", format!("NUL byte at byte {i}")));
            }
            out.push(hex);
            i += 4;
        } else if c.is_ascii_graphic() {
            out.push(c);
            i += 1;
        } else {
            return Err(line_err(
                "path",
                format!("unescaped byte {c:#04x} at byte {i}"),
            ));
        }
    }
    if out.first() != Some(&b'/') {
        return Err(line_err("path", "not an absolute path"));
    }
    Ok(out)
}

impl core::fmt::Display for LineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_renders_and_parses_back() {
        let mut set = AccessSet::learned();
        set.grant(b"/usr", fs::EXECUTE | fs::READ_FILE);
        set.grant(b"/tmp/a b\\c\n\xff", fs::ALL);
        set.tcp_bind.insert(0);
        set.tcp_connect.insert(65535);
        set.unscoped.insert(Scope::Signal);
        set.unscoped.insert(Scope::AbstractUnixSocket);
        let mut back = AccessSet::default();
        for l in set.lines() {
            let text = l.render();
            assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)), "{text}");
            back.add(&AccessLine::parse(&text).unwrap());
        }
        assert_eq!(back, set);
    }

    #[test]
    fn paths_escape_every_byte_but_graphic_ascii() {
        assert_eq!(
            escape_path(b"/a b\\\x01\xc3\xa9"),
            "/a\\x20b\\x5c\\x01\\xc3\\xa9"
        );
        let line = AccessLine::parse("fs read-file /a\\x20b\\x5c").unwrap();
        assert_eq!(
            line,
            AccessLine::Fs {
                path: b"/a b\\".to_vec(),
                rights: fs::READ_FILE
            }
        );
    }

    #[test]
    fn non_canonical_or_bad_lines_name_their_field() {
        for (text, field) in [
            ("fs read-file,execute /a", "rights"),
            ("fs read-file,read-file /a", "rights"),
            ("fs read-files /a", "rights"),
            ("fs read-file a", "path"),
            ("fs read-file /a\\x00", "path"),
            ("fs read-file /a\\x4G", "path"),
            ("fs read-file /a\\x4A", "path"),
            ("fs read-file /\\x2", "path"),
            ("fs read-file", "path"),
            ("fs read-file /a b", "path"),
            ("tcp-bind 65536", "port"),
            ("tcp-bind 080", "port"),
            ("tcp-connect -1", "port"),
            ("unscoped ptrace", "scope"),
            ("abi 0", "abi"),
            ("abi", "landlock"),
            ("udp-bind 53", "landlock"),
            ("tcp-bind  80", "port"),
        ] {
            let e = AccessLine::parse(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        // An escape of a byte that needs none is not canonical.
        assert_eq!(
            AccessLine::parse("fs read-file /\\x61").unwrap_err().field,
            "landlock"
        );
    }

    #[test]
    fn an_unrecorded_set_writes_no_lines() {
        assert!(AccessSet::default().lines().is_empty());
        assert_eq!(AccessSet::learned().lines(), [AccessLine::Abi(LEARNED_ABI)]);
    }
}
