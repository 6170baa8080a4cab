use super::*;

fn ng_entry(name: &str, file: &[u8]) -> (Vec<u8>, String) {
    let fd = HashAlg::Sha256.digest(file);
    let mut d = b"sha256:\0".to_vec();
    d.extend_from_slice(fd.as_bytes());
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    let mut data = Vec::new();
    push_field(&mut data, &d);
    push_field(&mut data, &n);
    let th = HashAlg::Sha1.digest(&data);
    let mut bin = Vec::new();
    bin.extend_from_slice(&10u32.to_le_bytes());
    bin.extend_from_slice(th.as_bytes());
    bin.extend_from_slice(&6u32.to_le_bytes());
    bin.extend_from_slice(b"ima-ng");
    bin.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bin.extend_from_slice(&data);
    let ascii = format!("10 {th} ima-ng sha256:{fd} {name}\n");
    (bin, ascii)
}

#[test]
fn binary_and_ascii_agree() {
    let (b1, a1) = ng_entry("boot_aggregate", b"x");
    let (b2, a2) = ng_entry("/usr/bin/with space", b"y");
    let bin = [b1, b2].concat();
    let ascii = format!("{a1}{a2}");
    let rb = replay(
        &bin,
        ParseOptions::default(),
        &[HashAlg::Sha1, HashAlg::Sha256],
        None,
        None,
    )
    .unwrap();
    let ra = replay(
        ascii.as_bytes(),
        ParseOptions::default(),
        &[HashAlg::Sha1, HashAlg::Sha256],
        None,
        None,
    )
    .unwrap();
    assert_eq!(rb.format, ImaFormat::BinaryLe);
    assert_eq!(ra.format, ImaFormat::Ascii);
    assert_eq!(rb.template_alg, HashAlg::Sha1);
    assert_eq!(rb.template_hash_mismatches, 0);
    assert_eq!(ra.template_hash_mismatches, 0);
    assert_eq!(rb.pcrs, ra.pcrs);
    assert_eq!(rb.boot_aggregate.unwrap().alg, HashAlg::Sha256);
    let list = ImaList::parse(ascii.as_bytes(), ParseOptions::default()).unwrap();
    assert_eq!(
        list.entries[1].file_name(),
        Some(b"/usr/bin/with space".as_slice())
    );
}

#[test]
fn violation_extends_ones() {
    let mut data = Vec::new();
    let mut d = b"sha1:\0".to_vec();
    d.extend_from_slice(&[0; 20]);
    push_field(&mut data, &d);
    push_field(&mut data, b"/tmp/x\0");
    let ascii = format!(
        "10 {} ima-ng sha1:{} /tmp/x\n",
        "0".repeat(40),
        "0".repeat(40)
    );
    let r = replay(
        ascii.as_bytes(),
        ParseOptions::default(),
        &[HashAlg::Sha256],
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.violations, 1);
    let want = extend(
        HashAlg::Sha256,
        &HashAlg::Sha256.null_id(),
        &Digest::ones(32),
    );
    assert_eq!(r.pcrs[&HashAlg::Sha256][&10], want);
}

#[test]
fn legacy_ima_template_hash() {
    let d = [7u8; 20];
    let name = b"/init";
    let mut padded = d.to_vec();
    padded.extend_from_slice(name);
    padded.resize(20 + 256, 0);
    let th = HashAlg::Sha1.digest(&padded);
    let mut bin = Vec::new();
    bin.extend_from_slice(&10u32.to_le_bytes());
    bin.extend_from_slice(th.as_bytes());
    bin.extend_from_slice(&3u32.to_le_bytes());
    bin.extend_from_slice(b"ima");
    bin.extend_from_slice(&d);
    bin.extend_from_slice(&(name.len() as u32).to_le_bytes());
    bin.extend_from_slice(name);
    let r = replay(&bin, ParseOptions::default(), &[HashAlg::Sha1], None, None).unwrap();
    assert_eq!(r.template_hash_mismatches, 0);
    let ascii = format!("10 {th} ima {} /init\n", Digest::from_slice(&d).unwrap());
    let ra = replay(
        ascii.as_bytes(),
        ParseOptions::default(),
        &[HashAlg::Sha1],
        None,
        None,
    )
    .unwrap();
    assert_eq!(ra.template_hash_mismatches, 0);
    assert_eq!(ra.pcrs, r.pcrs);
}

#[test]
fn errors_name_location() {
    let (b1, _) = ng_entry("a", b"x");
    match replay(
        &b1[..b1.len() - 2],
        ParseOptions::default(),
        &[HashAlg::Sha1],
        None,
        None,
    ) {
        Err(ImaError::Truncated {
            index: 0,
            offset: 0,
            field: "template data",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let bad = "10 zz ima-ng sha1:00 x\n";
    assert!(matches!(
        replay(
            bad.as_bytes(),
            ParseOptions::default(),
            &[HashAlg::Sha1],
            None,
            None
        ),
        Err(ImaError::UnknownFormat(_)) | Err(ImaError::Line { .. })
    ));
    assert_eq!(detect(b"", ParseOptions::default()), Err(ImaError::Empty));
}
