//! IMA template descriptors and their fields (kernel `security/integrity/ima/ima_template.c` and
//! `ima_template_lib.c`).

use core::fmt;

/// Most fields a template may have (the kernel's `IMA_TEMPLATE_NUM_FIELDS_MAX`).
pub const MAX_FIELDS: usize = 15;

/// One template field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `d`: SHA-1/MD5 file digest, 20 bytes, no algorithm prefix.
    D,
    /// `n`: file name of the legacy `ima` template (at most 255 bytes).
    N,
    /// `d-ng`: `"<algo>:\0"` followed by the file digest.
    DNg,
    /// `n-ng`: NUL-terminated file name of any length.
    NNg,
    /// `d-ngv2`: `"<ima|verity>:<algo>:\0"` followed by the digest.
    DNgv2,
    /// `sig`: the `security.ima` signature.
    Sig,
    /// `buf`: the measured buffer (kexec command line, keys, critical data).
    Buf,
    /// `d-modsig`: digest of the file without its appended signature (`d-ng` layout).
    DModsig,
    /// `modsig`: the appended (PKCS#7) signature.
    Modsig,
    /// `evmsig`: the `security.evm` portable signature.
    Evmsig,
    /// `xattrnames`: `|`-separated names of the protected xattrs (NUL-terminated string).
    XattrNames,
    /// `xattrlengths`: their lengths (binary).
    XattrLengths,
    /// `xattrvalues`: their values (binary).
    XattrValues,
    /// `iuid`: inode owner, u32.
    Iuid,
    /// `igid`: inode group, u32.
    Igid,
    /// `imode`: inode mode, u16.
    Imode,
}

/// How a field is stored and printed in the ASCII list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldFormat {
    /// Raw digest, printed as hex.
    Digest,
    /// `prefix:\0` + digest, printed as `prefix:hex`.
    DigestWithAlgo,
    /// NUL-terminated string, printed as text.
    String,
    /// Raw bytes, printed as hex.
    Hex,
    /// A little-endian unsigned integer of this many bytes, printed in decimal.
    Uint(usize),
}

impl Field {
    /// Every field.
    pub const ALL: [Field; 16] = [
        Self::D,
        Self::N,
        Self::DNg,
        Self::NNg,
        Self::DNgv2,
        Self::Sig,
        Self::Buf,
        Self::DModsig,
        Self::Modsig,
        Self::Evmsig,
        Self::XattrNames,
        Self::XattrLengths,
        Self::XattrValues,
        Self::Iuid,
        Self::Igid,
        Self::Imode,
    ];

    /// The field id used in template formats.
    pub const fn id(self) -> &'static str {
        match self {
            Self::D => "d",
            Self::N => "n",
            Self::DNg => "d-ng",
            Self::NNg => "n-ng",
            Self::DNgv2 => "d-ngv2",
            Self::Sig => "sig",
            Self::Buf => "buf",
            Self::DModsig => "d-modsig",
            Self::Modsig => "modsig",
            Self::Evmsig => "evmsig",
            Self::XattrNames => "xattrnames",
            Self::XattrLengths => "xattrlengths",
            Self::XattrValues => "xattrvalues",
            Self::Iuid => "iuid",
            Self::Igid => "igid",
            Self::Imode => "imode",
        }
    }

    /// The field with id `id`.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.id() == id)
    }

    /// Storage and ASCII format.
    pub const fn format(self) -> FieldFormat {
        match self {
            Self::D => FieldFormat::Digest,
            Self::DNg | Self::DNgv2 | Self::DModsig => FieldFormat::DigestWithAlgo,
            Self::N | Self::NNg | Self::XattrNames => FieldFormat::String,
            Self::Sig
            | Self::Buf
            | Self::Modsig
            | Self::Evmsig
            | Self::XattrLengths
            | Self::XattrValues => FieldFormat::Hex,
            Self::Iuid | Self::Igid => FieldFormat::Uint(4),
            Self::Imode => FieldFormat::Uint(2),
        }
    }
}

/// A template: its field list, and whether it is the legacy `ima` template, whose binary and hash
/// layouts differ from every other template.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Template {
    fields: [Field; MAX_FIELDS],
    len: u8,
    legacy: bool,
}

impl Template {
    fn of(list: &[Field], legacy: bool) -> Self {
        let mut fields = [Field::D; MAX_FIELDS];
        let n = list.len().min(MAX_FIELDS);
        fields[..n].copy_from_slice(&list[..n]);
        Self {
            fields,
            len: n as u8,
            legacy,
        }
    }

    /// The template for a template name as it appears in a measurement list: a built-in name, or
    /// (for templates set with `ima_template_fmt=`) the `|`-separated field list itself.
    pub fn from_name(name: &str) -> Option<Self> {
        use Field::*;
        Some(match name {
            "ima" => Self::of(&[D, N], true),
            "ima-ng" => Self::of(&[DNg, NNg], false),
            "ima-ngv2" => Self::of(&[DNgv2, NNg], false),
            "ima-sig" => Self::of(&[DNg, NNg, Sig], false),
            "ima-sigv2" => Self::of(&[DNgv2, NNg, Sig], false),
            "ima-buf" => Self::of(&[DNg, NNg, Buf], false),
            "ima-modsig" => Self::of(&[DNg, NNg, Sig, DModsig, Modsig], false),
            "evm-sig" => Self::of(
                &[
                    DNg,
                    NNg,
                    Evmsig,
                    XattrNames,
                    XattrLengths,
                    XattrValues,
                    Iuid,
                    Igid,
                    Imode,
                ],
                false,
            ),
            custom => {
                let mut fields = [Field::D; MAX_FIELDS];
                let mut n = 0;
                for id in custom.split('|') {
                    let f = Field::from_id(id)?;
                    *fields.get_mut(n)? = f;
                    n += 1;
                }
                Self {
                    fields,
                    len: n as u8,
                    legacy: false,
                }
            }
        })
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        self.fields.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// True for the legacy `ima` template.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: alloc::vec::Vec<&str> = self.fields().iter().map(|x| x.id()).collect();
        write!(
            f,
            "Template({}{})",
            ids.join("|"),
            if self.legacy { ", legacy" } else { "" }
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_custom() {
        assert!(Template::from_name("ima").unwrap().is_legacy());
        assert_eq!(
            Template::from_name("ima-sig").unwrap().fields(),
            &[Field::DNg, Field::NNg, Field::Sig]
        );
        let c = Template::from_name("d-ng|n-ng|iuid|imode").unwrap();
        assert_eq!(c.fields().len(), 4);
        assert!(!c.is_legacy());
        assert!(Template::from_name("d-ng|bogus").is_none());
        let too_many = ["d"; 16].join("|");
        assert!(Template::from_name(&too_many).is_none());
        for f in Field::ALL {
            assert_eq!(Field::from_id(f.id()), Some(f));
        }
    }
}
