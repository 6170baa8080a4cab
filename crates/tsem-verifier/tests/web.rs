//! The verifier's web page in a real browser: Debian's chromium, headless, reads the page of a
//! verifier holding an affirming, a contraindicated and a never-attested workload, and must show
//! each with its verdict (DOM check), the contraindicated one's forensic events explained and
//! its charts, and render it at a phone's width (screenshot). Skipped in one line without
//! chromium, unless `TSEM_REQUIRE_CHROMIUM=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use tsem_verifier::server::spawn;
use tsem_verifier::{Client, Config};

fn chromium() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

/// Run headless chromium with a profile of its own under `dir`; its stdout.
fn browse(chrome: &Path, dir: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .arg(url)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Width and height from a PNG's IHDR.
fn png_size(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn the_page_shows_every_workload_with_its_verdict_in_a_browser() {
    let Some(chrome) = chromium() else {
        assert!(
            std::env::var_os("TSEM_REQUIRE_CHROMIUM").is_none(),
            "TSEM_REQUIRE_CHROMIUM is set but chromium is not installed"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = TempDir::new("web");
    let db = format!("sqlite://{}", dir.0.join("v.db").display());
    let server = spawn(
        ([127, 0, 0, 1], 0).into(),
        &db,
        Config::new(Some("t".into())),
    )
    .unwrap();
    let admin = Client::new(&server.url(), Some("t".into())).unwrap();
    let anon = Client::new(&server.url(), None).unwrap();
    let model = test_model();
    let (signer, key) = keypair();
    for w in ["web-good", "web-bad", "web-new"] {
        admin.enroll(&enrolment(w, &key, 0, 300)).unwrap();
    }
    for (w, files) in [
        ("web-good", &["process_1.json"][..]),
        ("web-bad", &["process_1.json", "process_2.json"][..]),
    ] {
        let ns = namespace(&model, files);
        let n = anon.nonce(w).unwrap().nonce;
        anon.post(w, &post(attest(&ns, &model, &n, w, &signer), &ns))
            .unwrap();
    }

    let dom = browse(&chrome, &dir.0, &["--dump-dom"], &server.url());
    for (w, v) in [
        ("web-good", "affirming"),
        ("web-bad", "contraindicated"),
        ("web-new", "none"),
    ] {
        let row = format!("data-workload=\"{w}\" data-verdict=\"{v}\"");
        assert!(dom.contains(&row), "{row} not in the page:\n{dom}");
    }
    assert!(dom.contains("test-host"), "the attested host is missing");

    let dom = browse(
        &chrome,
        &dir.0,
        &["--dump-dom"],
        &format!("{}/ui/workloads/web-bad", server.url()),
    );
    assert!(dom.contains("data-verdict=\"contraindicated\""), "{dom}");
    assert!(dom.contains("forensic events"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 2, "two charts expected");
    // process_2's two forensic events, each explained.
    let forensics = dom.split("id=\"forensics\"").nth(1).unwrap_or("");
    assert_eq!(
        forensics
            .matches("in none of the workload's models")
            .count(),
        2,
        "{dom}"
    );

    // Both pages at a phone's width.
    for (i, url) in [
        server.url(),
        format!("{}/ui/workloads/web-bad", server.url()),
    ]
    .iter()
    .enumerate()
    {
        let shot = dir.0.join(format!("phone-{i}.png"));
        browse(
            &chrome,
            &dir.0,
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=390,844",
            ],
            url,
        );
        let png = std::fs::read(&shot).unwrap();
        assert_eq!(png_size(&png), (390, 844));
        if let Some(keep) = std::env::var_os("TSEM_KEEP_SCREENSHOTS") {
            std::fs::write(Path::new(&keep).join(format!("phone-{i}.png")), &png).unwrap();
        }
    }
    server.stop().unwrap();
}
