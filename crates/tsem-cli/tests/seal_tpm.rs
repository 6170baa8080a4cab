//! Secrets sealed to a model's state, end to end with swtpm: a build learned and sealed to; an
//! identical enforced build unseals; the same build plus one out-of-model read (denied) cannot;
//! another TPM cannot; the PCR value predicted from the model is the one the TPM computed.
//! Every check is on effects: the secret file's content, the denied read's output, the PCR the
//! TPM reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod swtpm;
mod verifier_process;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::Digest as _;
use swtpm::{Swtpm, path as p, skip_tpm_test};
use verifier_process::text;

const BUILD: &str = "set -e
mkdir -p out
sort words.txt > out/sorted.txt
wc -l < out/sorted.txt > out/count.txt
tar cf out/artifact.tar out/sorted.txt out/count.txt
sha256sum out/artifact.tar > out/artifact.sha256
if [ -n \"${EXTRA_READ:-}\" ]; then
    if read -r line < \"$EXTRA_READ\"; then echo \"$line\" > out/leak; fi
fi
";

struct Build {
    root: PathBuf,
    dir: PathBuf,
}

impl Build {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!("tsem-test-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("work");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("build.sh"), BUILD).unwrap();
        std::fs::write(dir.join("words.txt"), "pear\napple\nfig\n").unwrap();
        std::fs::write(root.join("never-read.txt"), "not for this build\n").unwrap();
        std::fs::write(root.join("secret.key"), "artifact-signing-key-0123456789\n").unwrap();
        Build { root, dir }
    }

    fn tsem(&self, args: &[&str], extra_read: Option<&Path>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tsem"));
        c.args(args)
            .current_dir(&self.dir)
            .env("HOME", &self.root)
            .env_remove("EXTRA_READ")
            .stdin(Stdio::null());
        if let Some(f) = extra_read {
            c.env("EXTRA_READ", f);
        }
        c.output().unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `tsem run --enforce --unseal` of the build; the secret goes to `out`.
    fn unseal(&self, t: &Swtpm, out: &str, extra_read: Option<&Path>) -> Output {
        self.tsem(
            &[
                "run",
                "--enforce",
                "--model",
                p(&self.file("build.model")),
                "--tpm",
                &t.tcti(),
                "--unseal",
                p(&self.file("blob.json")),
                "--secret-out",
                p(&self.file(out)),
                "--",
                "sh",
                "build.sh",
            ],
            extra_read,
        )
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn hex(s: &str) -> Vec<u8> {
    tsem_attest::claims::from_hex("x", s).unwrap()
}

fn pcr23(t: &Swtpm) -> Vec<u8> {
    let v = t.helper(&["pcrs", "--pcr", "23"]).unwrap();
    hex(v[0][1].as_str().unwrap())
}

/// SHA-256(prior || SHA-256(text)): what extending the run's closing marker does.
fn closed(prior: &[u8]) -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    h.update(prior);
    h.update(sha2::Sha256::digest(b"tsem: sealed run ended"));
    h.finalize().to_vec()
}

#[test]
fn only_a_build_that_ran_exactly_as_modeled_unseals() {
    if skip_tpm_test("only_a_build_that_ran_exactly_as_modeled_unseals") {
        return;
    }
    let b = Build::new();
    let t = Swtpm::start("seal");
    let model = b.file("build.model");
    let o = b.tsem(&["learn", "-o", p(&model), "--", "sh", "build.sh"], None);
    assert!(o.status.success(), "learning failed: {}", text(&o));

    let o = b.tsem(
        &[
            "seal",
            "--model",
            p(&model),
            "--tpm",
            &t.tcti(),
            "-o",
            p(&b.file("blob.json")),
            p(&b.file("secret.key")),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let blob: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.file("blob.json")).unwrap()).unwrap();
    assert_eq!(blob["pcr"], 23);
    let predicted = hex(blob["pcr_value"].as_str().unwrap());
    assert!(
        !std::fs::read_to_string(b.file("blob.json"))
            .unwrap()
            .contains("artifact-signing-key"),
        "the secret is in the blob in clear"
    );

    // The identical enforced build unseals, and the TPM's PCR 23 went through the predicted
    // value (read after the run's closing extension, which it computed from it).
    let o = b.unseal(&t, "got.key", None);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(b.file("got.key")).unwrap(),
        std::fs::read(b.file("secret.key")).unwrap()
    );
    assert_eq!(
        pcr23(&t),
        closed(&predicted),
        "PCR 23 did not hold the predicted value"
    );
    assert!(
        b.dir.join("out/artifact.tar").is_file(),
        "the build did not run"
    );

    // The same build plus one out-of-model read: the read is denied and nothing is unsealed.
    let never = b.file("never-read.txt");
    let o = b.unseal(&t, "forensic.key", Some(&never));
    assert!(!o.status.success(), "{}", text(&o));
    // Refused by the TPM, because of the state: the platform and the PCR's start were right.
    for why in [
        "cannot unseal",
        "forensic event(s)",
        "PCRs do not hold the values the secret was sealed to",
    ] {
        assert!(text(&o).contains(why), "{why:?} not in {}", text(&o));
    }
    assert!(!text(&o).contains(" 0 forensic event(s)"), "{}", text(&o));
    assert!(!b.file("forensic.key").exists(), "a secret was written");
    assert!(
        !b.dir.join("out/leak").exists(),
        "the out-of-model read was not denied"
    );
    assert_ne!(pcr23(&t), closed(&predicted));

    // Another TPM (same empty boot chain as this swtpm, other seeds) cannot load the blob.
    let other = Swtpm::start("seal-other");
    let o = b.unseal(&other, "other.key", None);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("sealed by another TPM"), "{}", text(&o));
    assert!(!b.file("other.key").exists(), "a secret was written");

    // And the first TPM still unseals for a run that matches (the PCR is reset per run).
    let o = b.unseal(&t, "again.key", None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(b.file("again.key").is_file());
}
