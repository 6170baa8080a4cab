//! Generate large, well-formed evidence for benchmarks (`bench/evidence.sh`):
//!
//! ```text
//! gen_evidence ima N OUT        binary ima-ng list, SHA-1 template hashes, boot_aggregate first
//! gen_evidence eventlog N OUT   crypto-agile TCG log, sha1 + sha256 banks, N records
//! ```
//!
//! Deterministic (no randomness): the same arguments always give the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tsem_core::hash::HashAlg;

fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn field(v: &mut Vec<u8>, b: &[u8]) {
    u32le(v, b.len() as u32);
    v.extend_from_slice(b);
}

fn ima_entry(out: &mut Vec<u8>, name: &str, file_digest: &[u8]) {
    let mut dng = b"sha256:\0".to_vec();
    dng.extend_from_slice(file_digest);
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    let mut data = Vec::new();
    field(&mut data, &dng);
    field(&mut data, &n);
    u32le(out, 10);
    out.extend_from_slice(HashAlg::Sha1.digest(&data).as_bytes());
    field(out, b"ima-ng");
    field(out, &data);
}

fn gen_ima(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 120);
    ima_entry(
        &mut out,
        "boot_aggregate",
        HashAlg::Sha256.digest(b"pcrs 0-9").as_bytes(),
    );
    for i in 1..n {
        let name = format!("/usr/lib/x86_64-linux-gnu/lib{:06}.so.{}", i, i % 7);
        ima_entry(
            &mut out,
            &name,
            HashAlg::Sha256.digest(name.as_bytes()).as_bytes(),
        );
    }
    out
}

const BANKS: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];

fn event2(out: &mut Vec<u8>, pcr: u32, ty: u32, hashed: &[u8], data: &[u8]) {
    u32le(out, pcr);
    u32le(out, ty);
    u32le(out, BANKS.len() as u32);
    for b in BANKS {
        out.extend_from_slice(&b.tpm_alg_id().to_le_bytes());
        out.extend_from_slice(b.digest(hashed).as_bytes());
    }
    field(out, data);
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn variable(name: &str, value: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b,
        0x8c,
    ];
    v.extend_from_slice(&(name.encode_utf16().count() as u64).to_le_bytes());
    v.extend_from_slice(&(value.len() as u64).to_le_bytes());
    v.extend_from_slice(&utf16(name));
    v.extend_from_slice(value);
    v
}

fn image_event(path: &str) -> Vec<u8> {
    let mut dp = Vec::new();
    let p = utf16(&format!("{path}\0"));
    dp.extend_from_slice(&[4, 4]);
    dp.extend_from_slice(&((p.len() + 4) as u16).to_le_bytes());
    dp.extend_from_slice(&p);
    dp.extend_from_slice(&[0x7f, 0xff, 4, 0]);
    let mut v = Vec::new();
    v.extend_from_slice(&0x1000_0000u64.to_le_bytes());
    v.extend_from_slice(&0x10_0000u64.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&(dp.len() as u64).to_le_bytes());
    v.extend_from_slice(&dp);
    v
}

fn gen_eventlog(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    // Spec ID Event03 header (legacy record format).
    let mut spec = b"Spec ID Event03\0".to_vec();
    spec.extend_from_slice(&0u32.to_le_bytes());
    spec.extend_from_slice(&[0, 2, 0, 2]);
    u32le(&mut spec, BANKS.len() as u32);
    for b in BANKS {
        spec.extend_from_slice(&b.tpm_alg_id().to_le_bytes());
        spec.extend_from_slice(&(b.size() as u16).to_le_bytes());
    }
    spec.push(0);
    u32le(&mut out, 0);
    u32le(&mut out, 3);
    out.extend_from_slice(&[0; 20]);
    field(&mut out, &spec);
    let mut count = 1;
    event2(
        &mut out,
        0,
        8,
        &utf16("bench firmware 1.0\0"),
        &utf16("bench firmware 1.0\0"),
    );
    count += 1;
    event2(
        &mut out,
        7,
        0x8000_0001,
        &variable("SecureBoot", &[1]),
        &variable("SecureBoot", &[1]),
    );
    count += 1;
    for pcr in 0..8 {
        event2(&mut out, pcr, 4, &[0; 4], &[0; 4]);
        count += 1;
    }
    let mut i = 0usize;
    while count < n {
        match i % 4 {
            0 => {
                // GRUB measures the command without its "grub_cmd: " prefix and NUL.
                let cmd = format!("linux /vmlinuz-{i} root=UUID=0000 ro quiet");
                let s = format!("grub_cmd: {cmd}\0");
                event2(&mut out, 8, 0xD, cmd.as_bytes(), s.as_bytes());
            }
            1 => {
                let s = format!("(hd0,gpt2)/boot/module-{i}.mod\0");
                event2(
                    &mut out,
                    9,
                    0xD,
                    format!("module {i}").as_bytes(),
                    s.as_bytes(),
                );
            }
            2 => {
                let img = image_event(&format!("\\EFI\\bench\\app{i}.efi"));
                event2(
                    &mut out,
                    4,
                    0x8000_0003,
                    format!("pe image {i}").as_bytes(),
                    &img,
                );
            }
            _ => {
                let v = variable(
                    &format!("Boot{:04X}", i % 0x10000),
                    format!("option {i}").as_bytes(),
                );
                event2(
                    &mut out,
                    1,
                    0x8000_0002,
                    format!("option {i}").as_bytes(),
                    &v,
                );
            }
        }
        i += 1;
        count += 1;
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gen_evidence (ima|eventlog) N OUT";
    let (Some(kind), Some(n), Some(out)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N must be a number");
    let bytes = match kind.as_str() {
        "ima" => gen_ima(n),
        "eventlog" => gen_eventlog(n),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    std::fs::write(out, &bytes).expect("write output");
    eprintln!("{out}: {n} {kind} records, {} bytes", bytes.len());
}
