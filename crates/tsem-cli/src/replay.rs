//! `tsem replay`: model event descriptions in a fresh namespace.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;
use tsem_core::hash::{Digest, HashAlg};
use tsem_core::map::Mapping;
use tsem_core::namespace::{Config, Namespace, TaskKey};
use tsem_format::{ModelFile, Parsed, Record, RecordParser, Strictness};

/// Model the events in FILEs (`-` is stdin) in a fresh namespace and print its state.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Load and seal this model first: out-of-model events become forensics.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// The namespace's hash function and coefficient layout.
    #[command(flatten)]
    pub ns: crate::replay::NsArgs,
    /// Hardware aggregate (hex) seeding the measurement and the state; default: the model's, or zero.
    #[arg(long, value_name = "HEX")]
    pub aggregate: Option<String>,
    /// Explain each forensic event against the events of this trajectory (e.g. the run the model
    /// was learned from): the nearest one and the fields that differ. Repeatable.
    #[arg(long, value_name = "TRAJECTORY")]
    pub explain: Vec<PathBuf>,
    /// Naming rules to apply before modeling (`created-subtree-v1`; default none, plain
    /// model0). With --model, the model's `# tsem-rules:` line decides.
    #[arg(long, value_name = "LIST", conflicts_with = "model")]
    pub rules: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Accept only strict JSON (RFC 8259: UTF-8, control characters escaped), e.g. to check that
    /// files we wrote are readable by any JSON tool. By default lines are read as the TSEM
    /// kernel writes them: a pathname's bytes as they are, valid UTF-8 or not.
    #[arg(long)]
    pub strict_json: bool,
    /// Keep every new point's description in memory (as `tsem run` does). By default replay keeps
    /// a coefficient and a count per point, and the forensic points' descriptions (all it prints)
    /// in a scratch file under $TMPDIR, so memory stays ~50 bytes per point at any length.
    #[arg(long)]
    pub keep_descriptions: bool,
    /// Threads: 1 reads, parses and models on one thread; with N >= 2 every thread takes blocks
    /// of lines in turn and parses them, and whichever is free names and models the parsed
    /// blocks in input order. The output is the same. Default: 2 when at least two CPUs are
    /// available, else 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=16))]
    pub threads: Option<u8>,
    /// Trajectory or export files, one JSON record per line (`-` for stdin).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Replay's default thread count: pipelined when a second CPU is there to parse on.
pub fn default_threads() -> u8 {
    if std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) {
        2
    } else {
        1
    }
}

/// The namespace's hash function and coefficient layout, shared by every command that models.
#[derive(clap::Args, Clone, Copy)]
pub struct NsArgs {
    /// Hash function of the namespace: sha256, sha384, sha512, sm3 (or sha1).
    #[arg(long, value_name = "NAME", default_value = "sha256")]
    pub digest: HashAlg,
    /// Coefficient layout: model0 (TSEM post-v4 kernel), v3, or quixote-compat.
    #[arg(long, value_name = "NAME", default_value = "model0")]
    pub mapping: Mapping,
}

/// Open `path`, `-` meaning stdin.
pub fn open_input(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
}

/// Read a model file with errors naming the file.
pub fn read_model(path: &Path) -> anyhow::Result<ModelFile> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("{}: cannot read model", path.display()))?;
    let m =
        ModelFile::parse_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // A signed model that no longer verifies has been altered: refuse it rather than enforce it.
    if m.is_signed() {
        m.verify(None)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(m)
}

/// The namespace's task key for an event: the exporting pid, else tnum, else the TASK_ID's
/// leading bytes (trajectory lines carry no pid).
pub fn task_key(ev: &tsem_core::event::Event) -> TaskKey {
    ev.header.pid.or(ev.header.tnum).unwrap_or_else(|| {
        let b = ev.header.task_id.padded::<8>();
        u64::from_le_bytes(b)
    })
}

/// Counters beyond the namespace's own.
#[derive(Default)]
pub struct StreamStats {
    /// v3 log records without a description.
    pub log_records: u64,
    /// The naming rules applied before modeling (none unless a model names them).
    pub namer: tsem_core::naming::Namer,
    /// Events named by naming rules (`%created:` paths) modeled without rules.
    pub ruled_names: u64,
    /// Where new forensic points' descriptions go when the namespace does not keep them.
    pub spill: Option<crate::spill::Spill>,
}

impl StreamStats {
    /// Apply the naming rules to a just-parsed event, in input order (rules may remember earlier
    /// events), and count names that only rules would have made.
    pub(crate) fn name(&mut self, event: &mut tsem_core::event::Event) {
        self.namer.apply(event);
        if self.namer.rules().is_empty()
            && event
                .file()
                .is_some_and(|f| tsem_core::naming::Namer::is_canonical_created(&f.path.pathname))
        {
            self.ruled_names += 1;
        }
    }
}

/// Model every record of `input` into `ns`, read as the kernel writes them. Errors name
/// `name:line`.
pub fn model_stream(
    ns: &mut Namespace,
    name: &str,
    input: &mut dyn BufRead,
    stats: &mut StreamStats,
) -> anyhow::Result<()> {
    model_stream_with(ns, name, input, stats, Strictness::Kernel)
}

/// [`model_stream`] with the given JSON strictness.
pub fn model_stream_with(
    ns: &mut Namespace,
    name: &str,
    input: &mut dyn BufRead,
    stats: &mut StreamStats,
    strictness: Strictness,
) -> anyhow::Result<()> {
    let mut parser = RecordParser::with_strictness(strictness);
    // Events are modeled in batches (see `Namespace::model_batch`); anything that reads or
    // changes the namespace otherwise (an aggregate record) first models what is pending. Each
    // line's event is parsed straight into the batch's next slot (`RecordParser::parse_into`).
    let mut pending = Pending::default();
    let mut scratch = Vec::with_capacity(2048);
    let read = tsem_format::lines::for_each_line(input, &mut scratch, |n, line| {
        let Some(text) = record_text(line) else {
            return Ok(());
        };
        let parsed = parser
            .parse_into(text, pending.slot())
            .map_err(|e| LineError::Record(anyhow::anyhow!("{name}:{n}: {e}")))?;
        match parsed {
            Parsed::Event(_) => {
                stats.name(pending.slot());
                pending.commit(n);
                if pending.len == REPLAY_BATCH {
                    pending.model(ns, name, stats).map_err(LineError::Record)?;
                }
            }
            Parsed::Aggregate(a) => {
                pending.model(ns, name, stats).map_err(LineError::Record)?;
                // An export replayed against a model (`tsem run --model M --export`) repeats
                // the aggregate the model already set: nothing to do.
                if a != ns.aggregate() {
                    ns.set_aggregate(a).map_err(|e| {
                        LineError::Record(anyhow::anyhow!("{name}:{n}: aggregate record: {e}"))
                    })?;
                }
            }
            Parsed::Log(_) => stats.log_records += 1,
        }
        Ok(())
    })
    .map_err(|e: LineError| e.into_anyhow(name));
    // A bad line stops the stream after the events before it, as when they were modeled one
    // at a time.
    let modeled = pending.model(ns, name, stats);
    read.and(modeled)
}

/// [`model_stream_with`] on `threads` threads: 1 is that function; 2 or more
/// [`crate::replay_par::model_stream_parallel`], every thread parsing blocks of lines and taking
/// turns at modeling them in input order. The results and errors are the same.
pub fn model_stream_threads(
    ns: &mut Namespace,
    name: &str,
    input: &mut (dyn BufRead + Send),
    stats: &mut StreamStats,
    strictness: Strictness,
    threads: u8,
) -> anyhow::Result<()> {
    match threads {
        0 | 1 => model_stream_with(ns, name, input, stats, strictness),
        n => crate::replay_par::model_stream_parallel(
            ns,
            name,
            input,
            stats,
            strictness,
            usize::from(n),
        ),
    }
}

/// Events per replay batch: a few of the namespace's groups, so that the parsed descriptions
/// held at once stay small.
pub(crate) const REPLAY_BATCH: usize = 4 * tsem_core::namespace::BATCH;

/// Parsed events not yet modeled, with their line numbers: the first `len` of `events`. The
/// slots after them are kept to be parsed into again.
#[derive(Default)]
pub(crate) struct Pending {
    events: Vec<(usize, tsem_core::event::Event)>,
    pub(crate) len: usize,
    outcomes: Vec<tsem_core::namespace::Outcome>,
}

impl Pending {
    /// The slot the next event is parsed into.
    pub(crate) fn slot(&mut self) -> &mut tsem_core::event::Event {
        if self.len == self.events.len() {
            self.events
                .push((0, tsem_format::event_json::blank_event()));
        }
        &mut self.events[self.len].1
    }

    /// The pending events, in order.
    pub(crate) fn events_mut(&mut self) -> impl Iterator<Item = &mut tsem_core::event::Event> {
        self.events.iter_mut().take(self.len).map(|(_, ev)| ev)
    }

    /// The event in [`Pending::slot`], read from line `n`, is pending.
    pub(crate) fn commit(&mut self, n: usize) {
        if let Some(e) = self.events.get_mut(self.len) {
            e.0 = n;
            self.len += 1;
        }
    }

    /// Model every pending event, in order; spill the new forensic points' descriptions. An
    /// error names the line of the event that caused it.
    pub(crate) fn model(
        &mut self,
        ns: &mut Namespace,
        name: &str,
        stats: &mut StreamStats,
    ) -> anyhow::Result<()> {
        let events = self.events.get(..self.len).unwrap_or(&[]);
        // Nothing is modeled twice, whatever happens.
        self.len = 0;
        if events.is_empty() {
            return Ok(());
        }
        self.outcomes.clear();
        let batch: Vec<(TaskKey, &tsem_core::event::Event)> =
            events.iter().map(|(_, ev)| (task_key(ev), ev)).collect();
        let r = ns.model_batch(&batch, &mut self.outcomes);
        let line = events.get(self.outcomes.len()).map_or(0, |(n, _)| *n);
        let spilled = self
            .outcomes
            .iter()
            .zip(events)
            .filter(|(o, _)| o.new_point && o.forensic)
            .try_for_each(|(_, (_, ev))| match &mut stats.spill {
                Some(spill) => spill.push(ev),
                None => Ok(()),
            });
        r.map_err(|e| anyhow::anyhow!("{name}:{line}: {e}"))?;
        spilled
    }
}

/// A line's record text: without its line end, `None` if blank. A final line without its
/// newline is accepted only if it is a whole record; the parser reports a truncated one.
pub(crate) fn record_text(line: &[u8]) -> Option<&[u8]> {
    let end = line
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    let text = &line[..end];
    (!text.iter().all(u8::is_ascii_whitespace)).then_some(text)
}

/// Hand every record of `input` to `f` with its line number. Lines are bytes: the kernel writes
/// a pathname's bytes as they are, so a line need not be UTF-8 (the parser's strictness says
/// what it accepts). Blank lines are skipped; errors name `name:line` and the field.
pub fn for_each_record(
    name: &str,
    input: &mut dyn BufRead,
    parser: &mut RecordParser,
    mut f: impl FnMut(usize, Record) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut scratch = Vec::with_capacity(2048);
    // Lines are parsed where they lie in the reader's buffer (`tsem_format::lines`).
    tsem_format::lines::for_each_line(input, &mut scratch, |n, line| {
        let Some(text) = record_text(line) else {
            return Ok(());
        };
        let record = parser
            .parse(text)
            .map_err(|e| LineError::Record(anyhow::anyhow!("{name}:{n}: {e}")))?;
        f(n, record).map_err(LineError::Record)
    })
    .map_err(|e| e.into_anyhow(name))
}

/// Why reading records stopped: the input could not be read at line N, or a record (or the
/// caller) failed.
enum LineError {
    Read(usize, std::io::Error),
    Record(anyhow::Error),
}

impl LineError {
    fn into_anyhow(self, name: &str) -> anyhow::Error {
        match self {
            LineError::Read(n, e) => {
                anyhow::Error::new(e).context(format!("{name}:{n}: read error"))
            }
            LineError::Record(e) => e,
        }
    }
}

impl From<(usize, tsem_format::lines::ReadError)> for LineError {
    fn from((n, e): (usize, tsem_format::lines::ReadError)) -> Self {
        LineError::Read(n, e.0)
    }
}

/// Every event description in `files` (aggregate and log records are skipped).
pub fn read_events(files: &[PathBuf]) -> anyhow::Result<Vec<tsem_core::event::Event>> {
    let mut out = Vec::new();
    let mut parser = RecordParser::new();
    for f in files {
        let name = f.display().to_string();
        for_each_record(&name, &mut *open_input(f)?, &mut parser, |_, record| {
            if let Record::Event { event, .. } = record {
                out.push(event);
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Parse `--aggregate`.
pub fn parse_digest_arg(what: &str, hex: &str, alg: HashAlg) -> anyhow::Result<Digest> {
    Digest::from_hex_len(hex, alg.size()).map_err(|e| anyhow::anyhow!("--{what}: {e} (for {alg})"))
}

/// Build the namespace for `digest`/`mapping`, loading `model` if given; it keeps every new
/// point's description.
pub fn namespace_for(
    alg: HashAlg,
    mapping: Mapping,
    model: Option<&Path>,
    aggregate: Option<&str>,
) -> anyhow::Result<Namespace> {
    namespace_keeping(alg, mapping, model, aggregate, true)
}

/// [`namespace_for`], keeping descriptions only if `keep_descriptions`.
pub fn namespace_keeping(
    alg: HashAlg,
    mapping: Mapping,
    model: Option<&Path>,
    aggregate: Option<&str>,
    keep_descriptions: bool,
) -> anyhow::Result<Namespace> {
    let mut ns = Namespace::new(Config {
        alg,
        mapping,
        keep_descriptions,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let agg = aggregate
        .map(|a| parse_digest_arg("aggregate", a, alg))
        .transpose()?;
    match model {
        Some(p) => {
            let m = read_model(p)?;
            if let Some(size) = m.digest_size()
                && size != alg.size()
            {
                bail!(
                    "{}: the model holds {size}-byte digests but --digest {alg} makes {}-byte ones",
                    p.display(),
                    alg.size()
                );
            }
            m.load_into(&mut ns, agg)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            // Replaying against a model means checking events against it.
            ns.seal();
        }
        None => {
            if let Some(a) = agg {
                ns.set_aggregate(a).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
    }
    Ok(ns)
}

/// The naming rules for modeling against `model` (its `# tsem-rules:` line), or `list`.
pub fn rules_for(
    model: Option<&Path>,
    list: Option<&str>,
) -> anyhow::Result<tsem_core::naming::RuleSet> {
    match (model, list) {
        (Some(p), _) => crate::learning::rules_of(&read_model(p)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display())),
        (None, Some(l)) => {
            tsem_core::naming::RuleSet::parse(l).map_err(|e| anyhow::anyhow!("--rules: {e}"))
        }
        (None, None) => Ok(tsem_core::naming::RuleSet::NONE),
    }
}

/// A JSON summary of a namespace.
pub fn summary(ns: &Namespace) -> serde_json::Value {
    json!({
        "events": ns.events(),
        "points": ns.points().len(),
        "forensics_events": ns.forensics_events(),
        "forensics_points": ns.forensics_points(),
        "state": ns.state().to_hex(),
        "model_state": ns.model_state().to_hex(),
        "measurement": ns.measurement().to_hex(),
        "aggregate": ns.aggregate().to_hex(),
        "base": ns.base().to_hex(),
        "digest": ns.alg().name(),
        "mapping": ns.config().mapping.name(),
        "mode": format!("{:?}", ns.mode()).to_lowercase(),
        "denied": ns.denied(),
    })
}

pub fn run(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    // Without a scratch file the descriptions stay in memory: replay still works, it only
    // costs more memory, so a read-only temp directory is a warning, not a failure.
    let spill = if a.keep_descriptions {
        None
    } else {
        match crate::spill::Spill::new() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("tsem replay: {e:#}; keeping descriptions in memory instead");
                None
            }
        }
    };
    let mut ns = namespace_keeping(
        a.ns.digest,
        a.ns.mapping,
        a.model.as_deref(),
        a.aggregate.as_deref(),
        spill.is_none(),
    )?;
    let mut stats = StreamStats {
        namer: tsem_core::naming::Namer::new(
            rules_for(a.model.as_deref(), a.rules.as_deref())?,
            a.ns.digest,
            a.ns.mapping,
        ),
        spill,
        ..StreamStats::default()
    };
    let strictness = if a.strict_json {
        Strictness::Json
    } else {
        Strictness::Kernel
    };
    let threads = a.threads.unwrap_or_else(default_threads);
    for f in &a.files {
        let mut input = open_input(f)?;
        let name = f.display().to_string();
        model_stream_threads(&mut ns, &name, &mut input, &mut stats, strictness, threads)?;
    }
    let reference = read_events(&a.explain)?;
    let explain = |ev: &tsem_core::event::Event| {
        let mut v = json!({"event": crate::describe::one_line(ev)});
        if let Some(e) = tsem_format::explain::explain(ev, &reference) {
            v["nearest"] = json!(crate::describe::one_line(&reference[e.nearest]));
            v["differences"] = e
                .differences
                .iter()
                .map(|d| json!({"field": d.field, "ours": d.ours, "theirs": d.theirs}))
                .collect();
        }
        v
    };
    // Forensic descriptions are printed as they are read back, so the text form never holds
    // them all; the JSON form is one object and holds what it prints.
    let mut explained = Vec::new();
    let mut each = |ev: tsem_core::event::Event| -> anyhow::Result<()> {
        let f = explain(&ev);
        if a.json {
            explained.push(f);
        } else {
            print_forensic(&f);
        }
        Ok(())
    };
    if !a.json {
        println!("events            {}", ns.events());
        println!("points            {}", ns.points().len());
        println!("forensics events  {}", ns.forensics_events());
        println!("forensics points  {}", ns.forensics_points());
        println!(
            "digest            {} ({})",
            ns.alg(),
            ns.config().mapping.name()
        );
        println!("aggregate         {}", ns.aggregate());
        println!("measurement       {}", ns.measurement());
        println!("state             {}", ns.state());
    }
    match stats.spill.take() {
        Some(spill) => spill.for_each(&mut each)?,
        None => ns.forensics().iter().cloned().try_for_each(&mut each)?,
    }
    if a.json {
        let mut v = summary(&ns);
        v["log_records"] = json!(stats.log_records);
        v["forensics"] = json!(explained);
        println!("{v}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One forensic event (and its nearest in-model event, if explained) in the text form.
fn print_forensic(f: &serde_json::Value) {
    println!("forensic: {}", f["event"].as_str().unwrap_or_default());
    if let Some(n) = f["nearest"].as_str() {
        println!("  nearest in-model: {n}");
        for d in f["differences"].as_array().into_iter().flatten() {
            println!(
                "  differs: {} = {} (model: {})",
                d["field"].as_str().unwrap_or_default(),
                d["ours"].as_str().unwrap_or("absent"),
                d["theirs"].as_str().unwrap_or("absent")
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tsem_format::{RecordKind, write_event};

    fn namespace() -> Namespace {
        Namespace::new(Config {
            alg: HashAlg::Sha256,
            mapping: Mapping::Model0,
            keep_descriptions: true,
        })
        .unwrap()
    }

    /// Replay's reused batch slots and in-buffer lines (a 4 KiB reader: many lines span a
    /// refill) give what modeling the events one at a time gives: state, counts and the
    /// descriptions kept, in order. A bad line stops the stream after the events before it.
    #[test]
    fn batched_slots_model_what_one_at_a_time_models() {
        let events = crate::bench::synthetic_events(700, 11);
        let mut text = Vec::new();
        for (i, ev) in events.iter().enumerate() {
            write_event(&mut text, ev, RecordKind::Trajectory);
            text.extend_from_slice(if i % 97 == 0 { b"\r\n\n" } else { b"\n" });
        }
        let mut one = namespace();
        for ev in &events {
            one.model(task_key(ev), ev).unwrap();
        }
        let mut ns = namespace();
        let mut input = std::io::BufReader::with_capacity(4096, &text[..]);
        model_stream(&mut ns, "t", &mut input, &mut StreamStats::default()).unwrap();
        assert_eq!(
            (ns.state(), ns.events(), ns.points().len()),
            (one.state(), 700, one.points().len())
        );
        assert_eq!(ns.trajectory(), one.trajectory());

        // Line 301 is cut short: the 300 events before it are modeled, and the error names it.
        let cut = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && *l != b"\r")
            .take(301)
            .enumerate()
            .flat_map(|(i, l)| {
                let l = if i == 300 { &l[..l.len() / 2] } else { l };
                [l, b"\n"].concat()
            })
            .collect::<Vec<u8>>();
        let mut ns = namespace();
        let err = model_stream(&mut ns, "t", &mut &cut[..], &mut StreamStats::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t:301: "), "{err}");
        let mut first = namespace();
        for ev in &events[..300] {
            first.model(task_key(ev), ev).unwrap();
        }
        assert_eq!((ns.events(), ns.state()), (300, first.state()));
    }
}
