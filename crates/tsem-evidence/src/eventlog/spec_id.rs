//! The crypto-agile header, `TCG_EfiSpecIDEventStruct`, read by its own length fields.

use alloc::vec::Vec;

use tsem_core::hash::HashAlg;

use super::{AlgorithmSize, Event, EventLogError, MAX_ALGORITHMS, SpecIdEvent, truncated};
use crate::reader::Reader;

/// Parse the Spec ID structure from `body`, the input from the header record's data on, by its own
/// length fields; returns it and the bytes it takes, which may exceed `eventDataSize`.
pub(super) fn parse_spec_id<'a>(
    body: &'a [u8],
    header: &Event<'a>,
) -> Result<(SpecIdEvent<'a>, usize), EventLogError> {
    let (index, offset) = (header.index, header.offset);
    // The event data starts after pcrIndex, eventType, the digest and eventDataSize.
    let mut r = Reader::with_base(body, offset + 32);
    let inval = |field: &'static str, reason: String| EventLogError::Invalid {
        index,
        offset,
        field,
        reason,
    };
    let t = |f| truncated(index, offset, f);
    r.take(16).map_err(t("Spec ID signature"))?;
    let platform_class = r.u32_le().map_err(t("platformClass"))?;
    let spec_version_minor = r.u8().map_err(t("specVersionMinor"))?;
    let spec_version_major = r.u8().map_err(t("specVersionMajor"))?;
    let spec_errata = r.u8().map_err(t("specErrata"))?;
    let uintn_size = r.u8().map_err(t("uintnSize"))?;
    let n = r.u32_le().map_err(t("numberOfAlgorithms"))?;
    if n == 0 || n > MAX_ALGORITHMS {
        return Err(inval(
            "numberOfAlgorithms",
            alloc::format!("{n} (allowed 1..={MAX_ALGORITHMS})"),
        ));
    }
    let mut algorithms = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let alg_id = r.u16_le().map_err(t("digestSizes.algorithmId"))?;
        let digest_size = r.u16_le().map_err(t("digestSizes.digestSize"))?;
        if let Some(alg) = HashAlg::from_tpm_alg_id(alg_id)
            && usize::from(digest_size) != alg.size()
        {
            return Err(inval(
                "digestSizes.digestSize",
                alloc::format!(
                    "{} declared with {digest_size} bytes, must be {}",
                    alg.bank_name(),
                    alg.size()
                ),
            ));
        }
        if digest_size == 0 {
            return Err(inval(
                "digestSizes.digestSize",
                alloc::format!("algorithm 0x{alg_id:04x} has size 0"),
            ));
        }
        if algorithms
            .iter()
            .any(|a: &AlgorithmSize| a.alg_id == alg_id)
        {
            return Err(inval(
                "digestSizes.algorithmId",
                alloc::format!("algorithm 0x{alg_id:04x} listed twice"),
            ));
        }
        algorithms.push(AlgorithmSize {
            alg_id,
            digest_size,
        });
    }
    let vsize = r.u8().map_err(t("vendorInfoSize"))?;
    let vendor_info = r.take(u64::from(vsize)).map_err(t("vendorInfo"))?;
    let used = body.len() - r.remaining();
    Ok((
        SpecIdEvent {
            platform_class,
            spec_version_minor,
            spec_version_major,
            spec_errata,
            uintn_size,
            algorithms,
            vendor_info,
        },
        used,
    ))
}
