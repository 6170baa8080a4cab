use super::*;

const M: &str = "# demo\naggregate 00\nstate 01\nstate 02\npseudonym 03\nseal\nend\n";

#[test]
fn parse_and_render_round_trip() {
    let m = ModelFile::parse(M).unwrap();
    assert_eq!(m.to_text(), M);
    assert_eq!(m.states().count(), 2);
    assert!(m.sealed());
}

#[test]
fn crlf_is_accepted_and_control_characters_are_not() {
    let m = ModelFile::parse("state 01\r\nseal\r\nend\r\n").unwrap();
    assert_eq!(m.to_text(), "state 01\nseal\nend\n");
    let e = ModelFile::parse("#\r\r\r").unwrap_err().to_string();
    assert_eq!(e, "line 1: line: control character at column 2");
}

#[test]
fn empty_and_truncated_models_are_refused() {
    for (text, msg) in [
        ("", "line 1: end: empty model file"),
        ("\n", "line 1: line: empty line"),
        (
            "# only a comment\n",
            "line 2: end: no `end` line: the model is truncated",
        ),
        (
            "aggregate 00\nstate 01\nseal\n",
            "line 4: end: no `end` line: the model is truncated",
        ),
        (
            "aggregate 00\nstate 01",
            "line 3: end: no `end` line: the model is truncated",
        ),
    ] {
        assert_eq!(
            ModelFile::parse(text).unwrap_err().to_string(),
            msg,
            "{text:?}"
        );
    }
    assert!(ModelFile::parse("state 01\nseal\nend\n").is_ok());
}

#[test]
fn errors_name_line_and_field() {
    assert_eq!(
        ModelFile::parse("state 0g\n").unwrap_err().to_string(),
        "line 1: state: bad hex: not a hex digit at character 1"
    );
    assert!(
        ModelFile::parse("aggregate 00\nstate 0000\n")
            .unwrap_err()
            .to_string()
            .starts_with("line 2: state: 2-byte digest")
    );
    assert!(
        ModelFile::parse("bogus 1\n")
            .unwrap_err()
            .to_string()
            .contains("unknown directive")
    );
    assert!(
        ModelFile::parse("end\nstate 00\n")
            .unwrap_err()
            .to_string()
            .starts_with("line 2")
    );
    assert!(
        ModelFile::parse("state 00\n\nseal\n")
            .unwrap_err()
            .to_string()
            .starts_with("line 2")
    );
}

#[test]
fn ed25519_sign_verify_and_tamper() {
    let (sk, pk) = generate_ed25519().unwrap();
    let mut m = ModelFile::parse(M).unwrap();
    assert_eq!(m.sign(&sk).unwrap(), "ed25519");
    let text = m.to_text();
    let back = ModelFile::parse(&text).unwrap();
    assert_eq!(back.verify(Some(&pk)).unwrap().schemes, vec!["ed25519"]);
    let tampered = ModelFile::parse(&text.replace("state 02", "state 04")).unwrap();
    assert_eq!(
        tampered.verify(None).unwrap_err(),
        SignatureError::Mismatch("ed25519")
    );
    let (_, other) = generate_ed25519().unwrap();
    assert_eq!(
        back.verify(Some(&other)).unwrap_err(),
        SignatureError::WrongKey("ed25519")
    );
    assert!(matches!(
        ModelFile::parse(M).unwrap().verify(None),
        Err(SignatureError::Unsigned(_))
    ));
}

const LL: &str = "aggregate 00\nstate 01\nlandlock abi 7\nlandlock fs execute,read-file /usr\n\
                  landlock tcp-connect 80\nseal\nend\n";

#[test]
fn landlock_lines_round_trip_and_are_signed() {
    let m = ModelFile::parse(LL).unwrap();
    assert_eq!(m.to_text(), LL);
    let set = m.access_set();
    assert_eq!(set.abi, 7);
    assert!(set.tcp_connect.contains(&80));
    let (sk, pk) = generate_ed25519().unwrap();
    let mut signed = m.clone();
    signed.sign(&sk).unwrap();
    let text = signed.to_text();
    assert!(ModelFile::parse(&text).unwrap().verify(Some(&pk)).is_ok());
    // Widening the backstop breaks the signature.
    let widened = text.replace("landlock tcp-connect 80", "landlock tcp-connect 81");
    assert_eq!(
        ModelFile::parse(&widened)
            .unwrap()
            .verify(None)
            .unwrap_err(),
        SignatureError::Mismatch("ed25519")
    );
}

#[test]
fn landlock_errors_name_line_and_field() {
    for (text, want) in [
        ("landlock fs read-file,execute /a\n", "line 1: rights: "),
        ("state 01\nlandlock fs read-file rel\n", "line 2: path: "),
        ("landlock tcp-bind 70000\n", "line 1: port: "),
        ("landlock\n", "line 1: landlock: missing value"),
        (
            "landlock tcp-bind 1\nlandlock tcp-bind 1\n",
            "line 2: landlock: repeats",
        ),
    ] {
        let e = ModelFile::parse(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

#[test]
fn merge_unites_access_sets_only_when_every_model_has_one() {
    let a = ModelFile::parse(LL).unwrap();
    let b = ModelFile::parse(&LL.replace("tcp-connect 80", "tcp-connect 443")).unwrap();
    let m = ModelFile::merge(&[a.clone(), b]).unwrap();
    let ports: Vec<u16> = m.access_set().tcp_connect.into_iter().collect();
    assert_eq!(ports, [80, 443]);
    assert_eq!(m.lines.last(), Some(&Line::End));
    let plain = ModelFile::parse(M).unwrap();
    assert!(
        !ModelFile::merge(&[a, plain])
            .unwrap()
            .access_set()
            .is_recorded()
    );
}
