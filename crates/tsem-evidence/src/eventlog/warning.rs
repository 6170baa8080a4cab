//! Where a log breaks the TCG PC Client Platform Firmware Profile but its producers and peers still
//! replay it: tsem replays it their way and says so, once per record and quirk.

use core::fmt;

use tsem_core::hash::HashAlg;

/// A spec violation tsem tolerated, and what the replay did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Record index (0 is the Spec ID / first record).
    pub index: usize,
    /// Byte offset of the record.
    pub offset: usize,
    /// What is wrong and how it was replayed.
    pub kind: WarningKind,
}

/// The tolerated violations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// The Spec ID structure (algorithm table and `vendorInfo`) is longer than the record's
    /// `eventDataSize`. As tpm2-tools does, the next record is read after the `vendorInfo`.
    SpecIdPastEventSize {
        /// `eventDataSize` of the record.
        declared: u32,
        /// Bytes the structure takes by its own length fields.
        structure: usize,
    },
    /// An extended record without a digest for a bank the Spec ID event declares. Like
    /// `TPM2_PCR_Extend` with a digest list that lacks the bank (and tpm2_eventlog), the replay does
    /// not extend that bank for this record; a quote of that bank therefore says nothing about
    /// the record.
    MissingDigest {
        /// `TPM_ALG_ID` of the bank.
        alg_id: u16,
    },
    /// A digest of an algorithm tsem knows but the Spec ID event does not declare. It is read with
    /// the algorithm's own size and not replayed: the log's banks are the ones it declares.
    UndeclaredAlgorithm {
        /// `TPM_ALG_ID` of the digest.
        alg_id: u16,
    },
    /// `EV_EFI_HCRTM_EVENT` on PCR 0 after PCR 0 was already extended. An H-CRTM measurement
    /// happens before any other, so this one cannot be one: extended like any record, from the
    /// current value.
    LateHcrtm,
    /// The data of an `EV_EFI_HCRTM_EVENT` is not the string `HCRTM` the profile requires.
    HcrtmData,
}

impl WarningKind {
    /// Stable machine name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SpecIdPastEventSize { .. } => "spec_id_past_event_size",
            Self::MissingDigest { .. } => "missing_digest",
            Self::UndeclaredAlgorithm { .. } => "undeclared_algorithm",
            Self::LateHcrtm => "late_hcrtm",
            Self::HcrtmData => "hcrtm_data",
        }
    }
}

/// `sha256`, or `0x00fe` for an algorithm tsem does not know.
pub fn alg_label(alg_id: u16) -> alloc::string::String {
    match HashAlg::from_tpm_alg_id(alg_id) {
        Some(a) => a.bank_name().into(),
        None => alloc::format!("0x{alg_id:04x}"),
    }
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SpecIdPastEventSize {
                declared,
                structure,
            } => write!(
                f,
                "the Spec ID structure takes {structure} bytes but eventDataSize is {declared}: \
                 the next record is read after vendorInfo (as tpm2-tools does)"
            ),
            Self::MissingDigest { alg_id } => {
                let b = alg_label(*alg_id);
                write!(
                    f,
                    "no {b} digest although the Spec ID event declares the bank: {b} not extended \
                     by this record (as tpm2_eventlog does), so a {b} quote does not cover it"
                )
            }
            Self::UndeclaredAlgorithm { alg_id } => write!(
                f,
                "a {} digest for a bank the Spec ID event does not declare: read, not replayed",
                alg_label(*alg_id)
            ),
            Self::LateHcrtm => f.write_str(
                "EV_EFI_HCRTM_EVENT after PCR 0 was extended: not an H-CRTM start, extended like \
                 any record",
            ),
            Self::HcrtmData => f.write_str("EV_EFI_HCRTM_EVENT data is not \"HCRTM\""),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} at byte {}: {}",
            self.index, self.offset, self.kind
        )
    }
}
