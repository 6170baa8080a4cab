//! `tsem eventlog` and `tsem ima`: measured-boot logs and IMA measurement lists.
//!
//! Thin: parse arguments, call `tsem_evidence`, print. Human output by default, `--json` for
//! machines. Digest and template-hash mismatches are reported, not fatal: replay reproduces what
//! the TPM did, and the verdict belongs to the caller.
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tsem_core::hash::{Digest, HashAlg};
use tsem_evidence::efi;
use tsem_evidence::eventlog::{self, EventLog};
use tsem_evidence::ima::{self, ImaList, ParseOptions, PcrBanks};
use tsem_evidence::payload;
use tsem_evidence::snapshot::Snapshot;

/// Event log subcommands.
#[derive(Subcommand)]
pub enum EventlogCmd {
    /// Replay a TCG PC Client event log: final PCRs of every bank, the TSEM aggregate (PCR 0-7)
    /// and the digests that do not match their content.
    Replay(EventlogReplayArgs),
    /// List the records of an event log, decoded.
    Show(EventlogShowArgs),
}

/// Arguments of `tsem eventlog replay`.
#[derive(Args)]
pub struct EventlogReplayArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Only this bank (sha1, sha256, sha384, sha512, sm3_256).
    #[arg(long, value_name = "NAME")]
    bank: Option<String>,
    /// The binary event log (e.g. /sys/kernel/security/tpm0/binary_bios_measurements).
    file: PathBuf,
}

/// Arguments of `tsem eventlog show`.
#[derive(Args)]
pub struct EventlogShowArgs {
    /// Print JSON: the records with their digests and decoded payloads, and the warnings.
    #[arg(long)]
    json: bool,
    /// Input file.
    file: PathBuf,
}

/// IMA subcommands.
#[derive(Subcommand)]
pub enum ImaCmd {
    /// Replay a measurement list: verify template hashes and compute the PCRs of each bank.
    Replay(ImaReplayArgs),
    /// The TSEM order-invariant state over the list's unique template hashes.
    State(ImaStateArgs),
    /// Cut a list after N entries into a snapshot (PCR values at the cut) and the remainder.
    Snapshot(ImaSnapshotArgs),
    /// List the entries of a measurement list.
    Show(ImaShowArgs),
}

/// Arguments of `tsem ima replay`.
#[derive(Args)]
pub struct ImaReplayArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Bank to replay (repeatable). Default: the list's template-hash algorithm.
    #[arg(long, value_name = "NAME")]
    bank: Vec<String>,
    /// Check the boot_aggregate against this TCG event log.
    #[arg(long, value_name = "FILE")]
    eventlog: Option<PathBuf>,
    /// FILE is the remainder of this snapshot: start from its PCR values.
    #[arg(long, value_name = "SNAPSHOT")]
    snapshot: Option<PathBuf>,
    /// Template-hash algorithm of the list (default: from a `_<alg>` file name, else detected).
    #[arg(long, value_name = "NAME")]
    template_alg: Option<String>,
    /// The measurement list (binary or ASCII).
    file: PathBuf,
}

/// Arguments of `tsem ima state`.
#[derive(Args)]
pub struct ImaStateArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Base point (hex); default all zero.
    #[arg(long, value_name = "HEX")]
    base: Option<String>,
    /// Hardware aggregate (hex); default all zero.
    #[arg(long, value_name = "HEX")]
    aggregate: Option<String>,
    /// Template-hash algorithm of the list.
    #[arg(long, value_name = "NAME")]
    template_alg: Option<String>,
    /// The measurement list.
    file: PathBuf,
}

/// Arguments of `tsem ima snapshot`.
#[derive(Args)]
pub struct ImaSnapshotArgs {
    /// Cut after this many entries.
    #[arg(long, value_name = "N")]
    at: usize,
    /// Where to write the snapshot.
    #[arg(short = 'o', long = "output", value_name = "SNAPSHOT")]
    output: PathBuf,
    /// Where to write the remainder (the entries after the cut, in the input's encoding).
    #[arg(short = 'r', long = "remainder", value_name = "REMAINDER")]
    remainder: PathBuf,
    /// FILE is the remainder of this earlier snapshot; the new snapshot continues it.
    #[arg(long, value_name = "SNAPSHOT")]
    snapshot: Option<PathBuf>,
    /// Template-hash algorithm of the list.
    #[arg(long, value_name = "NAME")]
    template_alg: Option<String>,
    /// The measurement list.
    file: PathBuf,
}

/// Arguments of `tsem ima show`.
#[derive(Args)]
pub struct ImaShowArgs {
    /// Template-hash algorithm of the list.
    #[arg(long, value_name = "NAME")]
    template_alg: Option<String>,
    /// The measurement list.
    file: PathBuf,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn bank(name: &str) -> anyhow::Result<HashAlg> {
    name.parse::<HashAlg>()
        .map_err(|e| anyhow::anyhow!("bank {name:?}: {e}"))
}

fn parse_opts(path: &Path, template_alg: Option<&str>) -> anyhow::Result<ParseOptions> {
    match template_alg {
        Some(n) => Ok(ParseOptions {
            template_alg: Some(bank(n)?),
        }),
        None => Ok(path
            .file_name()
            .and_then(|f| f.to_str())
            .map(ParseOptions::from_file_name)
            .unwrap_or_default()),
    }
}

fn pcrs_json(pcrs: &PcrBanks, only: Option<&[HashAlg]>) -> Value {
    let mut out = serde_json::Map::new();
    for (alg, m) in pcrs {
        if only.is_some_and(|o| !o.contains(alg)) {
            continue;
        }
        let inner: serde_json::Map<String, Value> = m
            .iter()
            .map(|(p, d)| (p.to_string(), json!(d.to_hex())))
            .collect();
        out.insert(alg.bank_name().to_owned(), Value::Object(inner));
    }
    Value::Object(out)
}

fn print_json(v: &Value) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    // As an io::Error, a closed pipe is recognised by main (it ends quietly).
    serde_json::to_writer_pretty(&mut out, v).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Run an event log subcommand.
pub fn eventlog(c: EventlogCmd) -> anyhow::Result<ExitCode> {
    match c {
        EventlogCmd::Replay(a) => eventlog_replay(a),
        EventlogCmd::Show(a) => eventlog_show(a),
    }
}

fn load_eventlog(path: &Path) -> anyhow::Result<eventlog::Replay> {
    let data = read(path)?;
    let log = EventLog::parse(&data).with_context(|| format!("{}", path.display()))?;
    Ok(eventlog::replay(&log))
}

/// Say on stderr where an event log that a verdict rests on breaks the TCG spec: the verdict
/// rests on how it was replayed.
pub(crate) fn warn_eventlog(path: &Path, w: &[eventlog::Warning]) {
    if w.is_empty() {
        return;
    }
    let mut lines = Vec::new();
    if write_warnings(&mut lines, w).is_ok() {
        for l in String::from_utf8_lossy(&lines).lines() {
            eprintln!("tsem: warning: {}: {}", path.display(), l.trim_start());
        }
    }
}

fn eventlog_replay(a: EventlogReplayArgs) -> anyhow::Result<ExitCode> {
    let data = read(&a.file)?;
    let log = EventLog::parse(&data).with_context(|| format!("{}", a.file.display()))?;
    let r = eventlog::replay(&log);
    let banks: Vec<HashAlg> = match &a.bank {
        Some(n) => {
            let b = bank(n)?;
            r.require_bank(b)?;
            vec![b]
        }
        None => r.banks.clone(),
    };
    let mut pcrs: PcrBanks = BTreeMap::new();
    for b in &banks {
        pcrs.insert(*b, r.pcrs.get(b).cloned().unwrap_or_default());
    }
    if a.json {
        let agg: serde_json::Map<String, Value> = banks
            .iter()
            .map(|b| (b.bank_name().to_owned(), json!(r.aggregate(*b).to_hex())))
            .collect();
        let mism: Vec<Value> = r
            .digest_mismatches
            .iter()
            .filter(|m| banks.contains(&m.bank))
            .map(|m| {
                json!({
                    "index": m.index, "offset": m.offset, "pcr": m.pcr,
                    "event_type": efi::event_type_label(m.event_type), "bank": m.bank.bank_name(),
                    "logged": m.logged.to_hex(), "computed": m.computed.to_hex(),
                })
            })
            .collect();
        return print_json(&json!({
            "format": r.format.name(),
            "events": r.events,
            "banks": banks.iter().map(|b| b.bank_name()).collect::<Vec<_>>(),
            "startup_locality": r.startup_locality,
            "hcrtm": r.hcrtm,
            "dynamic_launches": r.dynamic_launches,
            "pcrs": pcrs_json(&pcrs, None),
            "aggregate": Value::Object(agg),
            "digest_mismatches": mism,
            "unknown_algorithms": r.unknown_algorithms,
            "trailing_padding": log.trailing_padding,
            "digests_checked": r.digests_checked,
            "warnings": warnings_json(&r.warnings),
            "records": records_json(&log),
        }));
    }
    let mut out = std::io::stdout().lock();
    let names: Vec<&str> = banks.iter().map(|b| b.bank_name()).collect();
    writeln!(
        out,
        "{}: {}, {} events, banks {}",
        a.file.display(),
        r.format.name(),
        r.events,
        names.join(" ")
    )?;
    if let Some(i) = r.hcrtm {
        writeln!(out, "H-CRTM (event {i}): PCR 0 starts at 00..04")?;
    } else if let Some(l) = r.startup_locality {
        writeln!(out, "startup locality {l} (PCR 0 starts at 00..0{l})")?;
    }
    for b in &banks {
        writeln!(out, "{}:", b.bank_name())?;
        for (p, d) in pcrs.get(b).into_iter().flatten() {
            writeln!(out, "  PCR {p:>2}: {d}")?;
        }
        writeln!(out, "  aggregate (PCR 0-7): {}", r.aggregate(*b))?;
    }
    let mism: Vec<_> = r
        .digest_mismatches
        .iter()
        .filter(|m| banks.contains(&m.bank))
        .collect();
    if mism.is_empty() {
        writeln!(out, "digest mismatches: none")?;
    } else {
        writeln!(out, "digest mismatches: {}", mism.len())?;
        for m in mism {
            writeln!(
                out,
                "  event {} at byte {} (PCR {}, {}) {}: logged {} content hashes to {}",
                m.index,
                m.offset,
                m.pcr,
                efi::event_type_label(m.event_type),
                m.bank.bank_name(),
                m.logged,
                m.computed
            )?;
        }
    }
    write_warnings(&mut out, &r.warnings)?;
    Ok(ExitCode::SUCCESS)
}

/// Every record: header fields, digests by bank, decoded payload (raw hex with the reason when
/// it does not decode).
fn records_json(log: &EventLog<'_>) -> Value {
    log.events
        .iter()
        .map(|ev| {
            let digests: serde_json::Map<String, Value> = ev
                .digests
                .iter()
                .map(|d| {
                    let hex: String = d.digest.iter().map(|b| format!("{b:02x}")).collect();
                    (eventlog::alg_label(d.alg_id), json!(hex))
                })
                .collect();
            json!({
                "index": ev.index,
                "offset": ev.offset,
                "pcr": ev.pcr,
                "event_type": efi::event_type_label(ev.event_type),
                "event_type_id": ev.event_type,
                "extended": ev.is_extended(),
                "digests": digests,
                "size": ev.data.len(),
                "payload": payload::decode(ev, log.spec_id.as_ref()),
            })
        })
        .collect()
}

fn warnings_json(w: &[eventlog::Warning]) -> Value {
    w.iter()
        .map(|w| {
            let mut v = json!({
                "index": w.index, "offset": w.offset, "kind": w.kind.name(),
                "message": w.kind.to_string(),
            });
            match w.kind {
                eventlog::WarningKind::MissingDigest { alg_id }
                | eventlog::WarningKind::UndeclaredAlgorithm { alg_id } => {
                    v["bank"] = json!(eventlog::alg_label(alg_id));
                }
                _ => {}
            }
            v
        })
        .collect()
}

/// Missing digests come by the hundred when firmware skips a bank: one line per bank for them,
/// one line per warning otherwise.
fn write_warnings(out: &mut impl std::io::Write, w: &[eventlog::Warning]) -> std::io::Result<()> {
    if w.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "warnings (the log breaks the TCG spec; replayed as its producers do):"
    )?;
    let mut missing: BTreeMap<u16, Vec<&eventlog::Warning>> = BTreeMap::new();
    for x in w {
        match x.kind {
            eventlog::WarningKind::MissingDigest { alg_id } => {
                missing.entry(alg_id).or_default().push(x)
            }
            _ => writeln!(out, "  {x}")?,
        }
    }
    for (alg, m) in missing {
        let name = eventlog::alg_label(alg);
        match m.as_slice() {
            [one] => writeln!(out, "  {one}")?,
            many => writeln!(
                out,
                "  {} records have no {name} digest (first: event {} at byte {}): the {name} \
                 bank is not extended by them (as tpm2_eventlog does)",
                many.len(),
                many.first().map_or(0, |x| x.index),
                many.first().map_or(0, |x| x.offset),
            )?,
        }
    }
    Ok(())
}

fn eventlog_show(a: EventlogShowArgs) -> anyhow::Result<ExitCode> {
    let data = read(&a.file)?;
    let log = EventLog::parse(&data).with_context(|| format!("{}", a.file.display()))?;
    let r = eventlog::replay(&log);
    if a.json {
        return print_json(&json!({
            "format": log.format.name(),
            "events": log.events.len(),
            "trailing_padding": log.trailing_padding,
            "warnings": warnings_json(&r.warnings),
            "records": records_json(&log),
        }));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {}, {} events",
        a.file.display(),
        log.format.name(),
        log.events.len()
    )?;
    if let Some(s) = &log.spec_id {
        let algs: Vec<String> = s
            .algorithms
            .iter()
            .map(|x| match HashAlg::from_tpm_alg_id(x.alg_id) {
                Some(h) => h.bank_name().to_owned(),
                None => format!("0x{:04x}({} bytes)", x.alg_id, x.digest_size),
            })
            .collect();
        writeln!(
            out,
            "Spec ID: platform class {}, spec {}.{} errata {}, uintn size {}, banks {}",
            s.platform_class,
            s.spec_version_major,
            s.spec_version_minor,
            s.spec_errata,
            s.uintn_size,
            algs.join(" ")
        )?;
    }
    for ev in &log.events {
        let pcr = if ev.pcr == eventlog::PCR_NONE {
            "--".to_owned()
        } else {
            ev.pcr.to_string()
        };
        writeln!(
            out,
            "#{:<4} @{:<6} PCR {:>2} {:<34} {}",
            ev.index,
            ev.offset,
            pcr,
            efi::event_type_label(ev.event_type),
            eventlog::describe(ev)
        )?;
        for d in &ev.digests {
            let name = d.alg().map_or_else(
                || format!("0x{:04x}", d.alg_id),
                |h| h.bank_name().to_owned(),
            );
            let hex: String = d.digest.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(out, "      {name:>7}: {hex}")?;
        }
    }
    if log.trailing_padding > 0 {
        writeln!(
            out,
            "({} bytes of fill after the last record)",
            log.trailing_padding
        )?;
    }
    write_warnings(&mut out, &r.warnings)?;
    Ok(ExitCode::SUCCESS)
}

/// Run an IMA subcommand.
pub fn ima(c: ImaCmd) -> anyhow::Result<ExitCode> {
    match c {
        ImaCmd::Replay(a) => ima_replay(a),
        ImaCmd::State(a) => ima_state(a),
        ImaCmd::Snapshot(a) => ima_snapshot(a),
        ImaCmd::Show(a) => ima_show(a),
    }
}

fn ima_replay(a: ImaReplayArgs) -> anyhow::Result<ExitCode> {
    let mut opts = parse_opts(&a.file, a.template_alg.as_deref())?;
    let snap = match &a.snapshot {
        Some(p) => Some(Snapshot::parse(&read(p)?).with_context(|| format!("{}", p.display()))?),
        None => None,
    };
    if let Some(s) = &snap {
        opts.template_alg = opts.template_alg.or(Some(s.template_alg));
    }
    let mut banks: Vec<HashAlg> = a
        .bank
        .iter()
        .map(|b| bank(b))
        .collect::<anyhow::Result<_>>()?;
    let ctx = || format!("{}", a.file.display());
    let r = match &snap {
        Some(s) => {
            if banks.is_empty() {
                banks.push(s.template_alg);
            }
            let data = read(&a.file)?;
            s.replay_remainder(&data, opts, &banks).with_context(ctx)?
        }
        // A pipe can be read only once, so only regular files are streamed.
        None if !std::fs::metadata(&a.file).is_ok_and(|m| m.is_file()) => {
            let data = read(&a.file)?;
            if banks.is_empty() {
                banks.push(ima::detect(&data, opts).with_context(ctx)?.1);
            }
            ima::replay(&data, opts, &banks, None, None).with_context(ctx)?
        }
        None => {
            if banks.is_empty() {
                banks.push(ima::detect_path(&a.file, opts).with_context(ctx)?.1);
            }
            // Streamed, so that a list of any length replays in bounded memory. A list that grew
            // while it was streamed (a live securityfs file) is read once and replayed in memory.
            match ima::replay_path(&a.file, opts, &banks) {
                Err(ima::ImaError::Io(_)) => {
                    let data = read(&a.file)?;
                    ima::replay(&data, opts, &banks, None, None).with_context(ctx)?
                }
                other => other.with_context(ctx)?,
            }
        }
    };
    let evlog = match &a.eventlog {
        Some(p) => {
            let l = load_eventlog(p)?;
            warn_eventlog(p, &l.warnings);
            Some(l)
        }
        None => None,
    };
    let check = evlog
        .as_ref()
        .map(|l| ima::check_boot_aggregate(r.boot_aggregate.as_ref(), l));
    let ba_ok = check.as_ref().and_then(|c| c.ok);
    if a.json {
        let details: Vec<Value> = r
            .mismatch_details
            .iter()
            .map(|m| json!({"index": m.index, "offset": m.offset, "logged": m.logged.to_hex(), "computed": m.computed.to_hex()}))
            .collect();
        return print_json(&json!({
            "format": r.format.name(),
            "template_alg": r.template_alg.name(),
            "entries": r.entries,
            "snapshot_entries": snap.as_ref().map(|s| s.entries),
            "violations": r.violations,
            "template_hash_mismatches": r.template_hash_mismatches,
            "template_hash_mismatch_details": details,
            "pcrs": pcrs_json(&r.pcrs, Some(&banks)),
            "boot_aggregate": r.boot_aggregate.map(|b| json!({"index": b.index, "alg": b.alg.name(), "digest": b.digest.to_hex()})),
            "boot_aggregate_ok": ba_ok,
            "boot_aggregate_detail": check.as_ref().map(|c| c.detail.clone()),
            "eventlog_warnings": evlog.as_ref().map(|l| warnings_json(&l.warnings)),
        }));
    }
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "{}: {} list, template hash {}, {} entries",
        a.file.display(),
        r.format.name(),
        r.template_alg,
        r.entries
    )?;
    if let Some(s) = &snap {
        write!(out, " after a snapshot of {}", s.entries)?;
    }
    writeln!(out, ", {} violations", r.violations)?;
    for (alg, m) in r.pcrs.iter().filter(|(b, _)| banks.contains(b)) {
        for (p, d) in m {
            writeln!(out, "{} PCR {p:>2}: {d}", alg.bank_name())?;
        }
    }
    writeln!(
        out,
        "template hash mismatches: {}",
        r.template_hash_mismatches
    )?;
    for m in &r.mismatch_details {
        writeln!(
            out,
            "  entry {} at byte {}: logged {} data hashes to {}",
            m.index, m.offset, m.logged, m.computed
        )?;
    }
    match &check {
        Some(c) => writeln!(
            out,
            "boot_aggregate: {} ({})",
            match c.ok {
                Some(true) => "ok",
                Some(false) => "MISMATCH",
                None => "not checked",
            },
            c.detail
        )?,
        None => writeln!(out, "boot_aggregate: not checked (no --eventlog)")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn hex_arg(name: &str, s: Option<&str>, alg: HashAlg) -> anyhow::Result<Option<Digest>> {
    match s {
        None => Ok(None),
        Some(h) => Digest::from_hex_len(h, alg.size())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--{name}: {e}")),
    }
}

fn ima_state(a: ImaStateArgs) -> anyhow::Result<ExitCode> {
    let data = read(&a.file)?;
    let opts = parse_opts(&a.file, a.template_alg.as_deref())?;
    let (_, alg) = ima::detect(&data, opts).with_context(|| format!("{}", a.file.display()))?;
    let base = hex_arg("base", a.base.as_deref(), alg)?;
    let agg = hex_arg("aggregate", a.aggregate.as_deref(), alg)?;
    let s = ima::state(
        &data,
        ParseOptions {
            template_alg: Some(alg),
        },
        base,
        agg,
    )
    .with_context(|| format!("{}", a.file.display()))?;
    if a.json {
        return print_json(&json!({
            "alg": s.alg.name(), "entries": s.entries, "unique": s.unique, "state": s.state.to_hex(),
        }));
    }
    println!(
        "{} state {} ({} entries, {} unique)",
        s.alg, s.state, s.entries, s.unique
    );
    Ok(ExitCode::SUCCESS)
}

fn ima_snapshot(a: ImaSnapshotArgs) -> anyhow::Result<ExitCode> {
    let data = read(&a.file)?;
    let mut opts = parse_opts(&a.file, a.template_alg.as_deref())?;
    let prev = match &a.snapshot {
        Some(p) => Some(Snapshot::parse(&read(p)?).with_context(|| format!("{}", p.display()))?),
        None => None,
    };
    if let Some(p) = &prev {
        opts.template_alg = opts.template_alg.or(Some(p.template_alg));
    }
    let cut = Snapshot::take(&data, opts, a.at, prev.as_ref())
        .with_context(|| format!("{}", a.file.display()))?;
    let Some(rem) = data.get(cut.remainder_offset..) else {
        bail!(
            "internal: remainder offset {} past the end",
            cut.remainder_offset
        );
    };
    std::fs::write(&a.output, cut.snapshot.to_text())
        .with_context(|| format!("writing {}", a.output.display()))?;
    std::fs::write(&a.remainder, rem)
        .with_context(|| format!("writing {}", a.remainder.display()))?;
    println!(
        "snapshot of {} entries written to {}; remainder of {} bytes from byte {} written to {}",
        cut.snapshot.entries,
        a.output.display(),
        rem.len(),
        cut.remainder_offset,
        a.remainder.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn ima_show(a: ImaShowArgs) -> anyhow::Result<ExitCode> {
    let data = read(&a.file)?;
    let opts = parse_opts(&a.file, a.template_alg.as_deref())?;
    let list = ImaList::parse(&data, opts).with_context(|| format!("{}", a.file.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} list, template hash {}, {} entries",
        a.file.display(),
        list.format.name(),
        list.template_alg,
        list.entries.len()
    )?;
    for e in &list.entries {
        let verdict = if e.is_violation() {
            "violation"
        } else if e.template_hash_in(list.template_alg) == e.template_hash {
            "ok"
        } else {
            "MISMATCH"
        };
        let digest = e.file_digest().map(|d| {
            let hex: String = d.digest.iter().map(|b| format!("{b:02x}")).collect();
            if d.prefix.is_empty() {
                hex
            } else {
                format!("{}:{hex}", d.prefix)
            }
        });
        let name = e
            .file_name()
            .map(|n| String::from_utf8_lossy(n).into_owned());
        writeln!(
            out,
            "#{:<6} PCR {:>2} {} {} {} {} [{verdict}]",
            e.index,
            e.pcr,
            e.template_hash,
            e.template_name,
            digest.as_deref().unwrap_or("-"),
            name.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
