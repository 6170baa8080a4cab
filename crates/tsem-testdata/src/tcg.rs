//! TCG event logs built byte by byte (TCG PC Client Platform Firmware Profile, crypto-agile
//! format), for tests that need a log breaking the spec the way real firmware does. Digests are
//! given by the caller: these builders hash nothing, so a test computes what it expects
//! independently of the code under test.

/// TPM_ALG_SHA1.
pub const SHA1: u16 = 0x0004;
/// TPM_ALG_SHA256.
pub const SHA256: u16 = 0x000B;
/// TPM_ALG_SHA384.
pub const SHA384: u16 = 0x000C;
/// TPM_ALG_SHA512.
pub const SHA512: u16 = 0x000D;

/// `EV_POST_CODE`.
pub const EV_POST_CODE: u32 = 0x1;

/// The digest size of a bank.
///
/// # Panics
/// On an algorithm other than the four above.
pub fn size(alg: u16) -> usize {
    match alg {
        SHA1 => 20,
        SHA256 => 32,
        SHA384 => 48,
        SHA512 => 64,
        _ => panic!("tcg::size: algorithm {alg:#06x} is not one of the builders'"),
    }
}

/// The Spec ID event (a legacy record) with the given banks and vendorInfo; `cut` bytes of the
/// structure are left out of `eventDataSize` (as in tpm2-tools' `specid-vendordata.bin`).
pub fn spec_id(banks: &[u16], vendor: &[u8], cut: usize) -> Vec<u8> {
    let mut d = b"Spec ID Event03\0".to_vec();
    d.extend_from_slice(&0u32.to_le_bytes()); // platformClass
    d.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintnSize
    d.extend_from_slice(&(banks.len() as u32).to_le_bytes());
    for &b in banks {
        d.extend_from_slice(&b.to_le_bytes());
        d.extend_from_slice(&(size(b) as u16).to_le_bytes());
    }
    d.push(vendor.len() as u8);
    d.extend_from_slice(vendor);
    let mut v = Vec::new();
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&3u32.to_le_bytes()); // EV_NO_ACTION
    v.extend_from_slice(&[0u8; 20]);
    v.extend_from_slice(&((d.len() - cut) as u32).to_le_bytes());
    v.extend_from_slice(&d);
    v
}

/// A TCG_PCR_EVENT2 with exactly the given (algorithm, digest) list, in that order.
pub fn event2(pcr: u32, ty: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&pcr.to_le_bytes());
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&(digests.len() as u32).to_le_bytes());
    for (alg, d) in digests {
        v.extend_from_slice(&alg.to_le_bytes());
        v.extend_from_slice(d);
    }
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// A log declaring SHA-1 and SHA-256 whose `n` POST-code events in PCR 0 carry only a SHA-256
/// digest (firmware that skips a bank): it replays, with one missing-digest warning per event.
pub fn missing_sha1_log(n: usize) -> Vec<u8> {
    let mut log = spec_id(&[SHA1, SHA256], &[], 0);
    for i in 0..n {
        log.extend(event2(
            0,
            EV_POST_CODE,
            &[(SHA256, vec![i as u8 + 1; 32])],
            b"post code",
        ));
    }
    log
}
