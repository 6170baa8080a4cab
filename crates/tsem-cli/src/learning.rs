//! Learning that converges: the naming rules and auto-pseudonyms as `tsem run` applies them, the
//! model file lines that record them, and the run's outcome in words.
//!
//! A model names its rules in a signed comment line, `# tsem-rules: created-subtree-v1`, which
//! Quixote's tools skip like any comment; every pseudonym tsem added on its own is preceded by
//! `# auto-pseudonym WHY: PATH`, so a reviewer sees what is not pinned and why.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;

use tsem_core::event::{Cell, Event, EventType};
use tsem_core::hash::Digest;
use tsem_core::namespace::{Mode, Namespace, Outcome};
use tsem_core::naming::{Namer, RULES_COMMENT, RuleSet};
use tsem_core::outputs::{Output, OutputTracker};
use tsem_core::raw::RawStr;
use tsem_format::model_file::{Line, ModelFile};

/// The comment prefix of an auto-pseudonym note (after `#`).
pub const AUTO_NOTE: &str = " auto-pseudonym ";

/// The naming rules a model was made with (none for a model without a `# tsem-rules:` line).
pub fn rules_of(m: &ModelFile) -> anyhow::Result<RuleSet> {
    let mut r = RuleSet::NONE;
    for l in &m.lines {
        if let Line::Comment(c) = l
            && let Some(list) = c.trim_start().strip_prefix(RULES_COMMENT.trim_start())
        {
            let more = RuleSet::parse(list).map_err(|e| anyhow::anyhow!("{e}"))?;
            r = r.union(more);
        }
    }
    Ok(r)
}

/// The notes of a model's pseudonyms: each `# auto-pseudonym WHY: PATH` line right before its
/// `pseudonym` line.
pub fn pseudonym_notes(m: &ModelFile) -> BTreeMap<Digest, String> {
    let mut notes = BTreeMap::new();
    for w in m.lines.windows(2) {
        if let [Line::Comment(c), Line::Pseudonym(p)] = w
            && let Some(note) = c.strip_prefix(AUTO_NOTE)
        {
            notes.insert(*p, note.to_string());
        }
    }
    notes
}

/// The note for an output path: `WHY: PATH`, the path shown escaped (docs/raw-bytes.md) so that
/// any bytes, control characters and invalid UTF-8 included, sit in one comment line and are
/// told apart. The note is for people; the pseudonym itself hashes the exact bytes.
pub fn note(path: &RawStr, o: &Output) -> String {
    let mut why = o.why.words();
    if o.executed {
        why.push_str(", executed");
    }
    if o.mapped_exec {
        why.push_str(", mapped executable");
    }
    format!("{why}: {path}")
}

/// The model file of `ns`: its rules line, then aggregate, points, pseudonyms (each after its
/// note), `seal`, `end`.
pub fn model_file(ns: &Namespace, rules: RuleSet, notes: &BTreeMap<Digest, String>) -> ModelFile {
    let base = ModelFile::from_namespace(ns);
    let mut lines = Vec::with_capacity(base.lines.len() + notes.len() + 1);
    if !rules.is_empty() {
        lines.push(Line::Comment(format!("{RULES_COMMENT}{}", rules.names())));
    }
    for l in base.lines {
        if let Line::Pseudonym(p) = &l
            && let Some(n) = notes.get(p)
        {
            lines.push(Line::Comment(format!("{AUTO_NOTE}{n}")));
        }
        lines.push(l);
    }
    ModelFile { lines }
}

/// Shapes the events of one run before the namespace models them (naming rules), watches them
/// for outputs, keeps the whole trajectory if asked, and follows what became untrusted.
pub struct Shaper {
    namer: Namer,
    outputs: Option<OutputTracker>,
    whole: Option<(HashSet<Digest>, Vec<Event>)>,
    exes: HashMap<i32, RawStr>,
    origins: Vec<String>,
    origin_tids: HashSet<i32>,
    untrusted: HashSet<i32>,
    forensic_denied: u64,
}

impl Shaper {
    /// A shaper applying `rules`, tracking outputs if `outputs`, keeping every point's first
    /// description if `whole`.
    pub fn new(
        rules: RuleSet,
        cfg: &tsem_core::namespace::Config,
        outputs: bool,
        whole: bool,
    ) -> Self {
        Self {
            namer: Namer::new(rules, cfg.alg, cfg.mapping),
            outputs: outputs.then(OutputTracker::new),
            whole: whole.then(|| (HashSet::new(), Vec::new())),
            exes: HashMap::new(),
            origins: Vec::new(),
            origin_tids: HashSet::new(),
            untrusted: HashSet::new(),
            forensic_denied: 0,
        }
    }

    /// The workload starts again (`--on-forensic restart`): what the naming rules remember of
    /// the previous incarnation (the files it created) is forgotten, so the new one names files
    /// as a fresh run does; a file left behind is one that existed before the start.
    pub fn restart(&mut self, cfg: &tsem_core::namespace::Config) {
        self.namer = Namer::new(self.namer.rules(), cfg.alg, cfg.mapping);
        self.exes.clear();
    }

    /// The event as the namespace must model it (no copy when no rule applies).
    pub fn shape<'a>(&mut self, ev: &'a Event, tid: i32) -> std::borrow::Cow<'a, Event> {
        if self.namer.rules().is_empty() && self.outputs.is_none() {
            return std::borrow::Cow::Borrowed(ev);
        }
        if let Some(t) = &mut self.outputs {
            t.observe(ev, &self.namer);
        }
        if ev.header.event_type == EventType::BprmCommittedCreds
            && let Some(f) = ev.file()
        {
            self.exes.insert(tid, f.path.pathname.clone());
        }
        let mut e = ev.clone();
        self.namer.apply(&mut e);
        std::borrow::Cow::Owned(e)
    }

    /// `tid` now runs the program at `path` (for naming it in the outcome).
    pub fn executed(&mut self, tid: i32, path: &RawStr) {
        self.exes.insert(tid, path.clone());
    }

    /// Note what the namespace decided about the shaped event `ev` of `tid`.
    pub fn outcome(&mut self, ev: &Event, tid: i32, untrusted: bool, o: &Outcome, mode: Mode) {
        if untrusted {
            self.untrusted.insert(tid);
        }
        if o.forensic {
            self.untrusted.insert(tid);
            if self.origin_tids.insert(tid) && self.origins.len() < 64 {
                self.origins.push(self.words(ev, tid));
            }
            if mode == Mode::Enforcing {
                self.forensic_denied += 1;
            }
        }
        if let Some((seen, all)) = &mut self.whole
            && o.valid
            && seen.insert(o.coefficient)
        {
            all.push(ev.clone());
        }
    }

    /// Every valid point's first description in this run (if kept).
    pub fn whole(&self) -> Option<&[Event]> {
        self.whole.as_ref().map(|(_, v)| v.as_slice())
    }

    /// The run is over: place what the outputs tracker still holds with what the naming rules
    /// learnt by now.
    pub fn finish(&mut self) {
        if let Some(t) = &mut self.outputs {
            t.finish(&self.namer);
        }
    }

    /// The outputs seen (if tracked).
    pub fn outputs(&self) -> Option<&OutputTracker> {
        self.outputs.as_ref()
    }

    /// "/usr/bin/cat opened /etc/hostname".
    fn words(&self, ev: &Event, tid: i32) -> String {
        let who = self.exes.get(&tid).unwrap_or(&ev.header.process);
        format!("{who} {}", deed(ev))
    }

    /// The outcome in words, if anything was out of the model.
    pub fn sentence(&self, ns: &Namespace) -> Option<String> {
        let n = ns.forensics_events();
        if n == 0 || ns.mode() == Mode::Free {
            return None;
        }
        let mut s = format!("{n} out-of-model {}", plural(n, "event", "events"));
        let shown: Vec<&str> = self.origins.iter().take(3).map(String::as_str).collect();
        if shown.is_empty() {
            // Counted without an origin (the run ended at it, e.g. its modeling agent failed):
            // no task to name, none said to be untrusted.
            if ns.mode() == Mode::Enforcing {
                let d = ns.denied();
                s.push_str(&format!(
                    "; {d} {} denied",
                    plural(d, "operation", "operations")
                ));
            }
            return Some(s);
        }
        s.push_str(": ");
        s.push_str(&shown.join("; "));
        let more = self.origin_tids.len().saturating_sub(shown.len());
        if more > 0 {
            s.push_str(&format!("; and {more} more in other tasks"));
        }
        if ns.policy() == tsem_core::policy::Policy::Deny {
            s.push_str(if ns.mode() == Mode::Enforcing {
                "; each was denied, its task stays trusted (--on-forensic deny)"
            } else {
                "; nothing was denied (sealed, --on-forensic deny)"
            });
            return Some(s);
        }
        let tasks = self.origin_tids.len() as u64;
        let desc = self.untrusted.len().saturating_sub(self.origin_tids.len()) as u64;
        let subject = if tasks == 1 {
            "that task".to_string()
        } else {
            format!("those {tasks} tasks")
        };
        s.push_str(&format!("; {subject}"));
        if desc > 0 {
            s.push_str(&format!(
                " and {desc} {}",
                plural(desc, "descendant", "descendants")
            ));
        }
        s.push_str(" became untrusted");
        if ns.mode() == Mode::Enforcing {
            let later = ns.denied().saturating_sub(self.forensic_denied);
            s.push_str(&format!(
                "; {later} later {} denied",
                plural(later, "operation", "operations")
            ));
        } else {
            s.push_str("; nothing was denied (sealed)");
        }
        match ns.policy() {
            tsem_core::policy::Policy::Kill => s.push_str("; the workload was killed"),
            tsem_core::policy::Policy::Restart => {
                s.push_str("; the workload was killed (and restarted, see above)")
            }
            _ => {}
        }
        Some(s)
    }
}

/// What to say of a learning run in which `n` processes outlived the process that started
/// them, if any.
pub fn outlived_warning(n: u64) -> Option<String> {
    (n > 0).then(|| {
        format!(
            "{n} {} the process that started {} (detached background work, such as git's \
             auto-maintenance): what {} does races the rest of the workload, so other runs may \
             differ; learn from more runs (`tsem learn --until-converged 2`) or have the \
             workload wait for {}",
            plural(n, "process outlived", "processes outlived"),
            plural(n, "it", "them"),
            plural(n, "it", "each"),
            plural(n, "it", "them")
        )
    })
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// What an event did, in words: "opened /etc/hostname", "executed /bin/ls", ...
pub fn deed(ev: &Event) -> String {
    const O_ACCMODE: u32 = 3;
    // `__FMODE_EXEC` in f_flags: the kernel's open of a program being executed.
    const FMODE_EXEC: u32 = 0o40;
    match (&ev.cell, ev.header.event_type) {
        (Cell::File(f), EventType::BprmCommittedCreds) => format!("executed {}", f.path.pathname),
        (Cell::File(f), EventType::FileOpen) if f.flags & FMODE_EXEC != 0 => {
            format!("executed {}", f.path.pathname)
        }
        (Cell::File(f), EventType::FileOpen) if f.flags & O_ACCMODE != 0 => {
            format!("opened {} for writing", f.path.pathname)
        }
        (Cell::File(f), EventType::FileOpen) => format!("opened {}", f.path.pathname),
        (Cell::MmapFile { file: Some(f), .. }, _) => format!("mapped {}", f.path.pathname),
        (Cell::InodeCreate { dentry, .. }, EventType::InodeMkdir) => {
            format!("created directory {}", dentry.path.pathname)
        }
        (Cell::InodeCreate { dentry, .. }, _) => format!("created {}", dentry.path.pathname),
        (Cell::InodeDirEntry { dentry, .. }, _) => format!("removed {}", dentry.path.pathname),
        (Cell::InodeRename(r), _) => format!(
            "renamed {} to {}",
            r.old_dentry.path.pathname, r.new_dentry.path.pathname
        ),
        (Cell::InodeSetattr { dentry, .. }, _) => {
            format!("changed the attributes of {}", dentry.path.pathname)
        }
        _ => {
            let line = crate::describe::one_line(ev);
            let detail = line.splitn(3, ' ').nth(2).unwrap_or("").to_string();
            format!("caused {} {detail}", ev.header.event_type.name())
                .trim_end()
                .to_string()
        }
    }
}

/// Give a merge of `inputs` their common naming rules and the notes of their pseudonyms.
pub fn carry_over(inputs: &[ModelFile], merged: &mut ModelFile) -> anyhow::Result<()> {
    let mut rules = None;
    let mut notes = BTreeMap::new();
    for m in inputs {
        let r = rules_of(m)?;
        if rules.is_some_and(|p| p != r) {
            anyhow::bail!(
                "models made with different naming rules cannot be merged (their points name \
                 created files differently)"
            );
        }
        rules = Some(r);
        for (p, n) in pseudonym_notes(m) {
            notes.entry(p).or_insert(n);
        }
    }
    let rules = rules.unwrap_or(RuleSet::NONE);
    let mut lines = Vec::with_capacity(merged.lines.len() + notes.len() + 1);
    if !rules.is_empty() {
        lines.push(Line::Comment(format!("{RULES_COMMENT}{}", rules.names())));
    }
    for l in merged.lines.drain(..) {
        if let Line::Pseudonym(p) = &l
            && let Some(n) = notes.get(p)
        {
            lines.push(Line::Comment(format!("{AUTO_NOTE}{n}")));
        }
        lines.push(l);
    }
    merged.lines = lines;
    Ok(())
}

/// `tsem model show`: one line per pseudonym, with why it was added where the model says.
pub fn print_pseudonyms(m: &ModelFile) {
    let notes = pseudonym_notes(m);
    for l in &m.lines {
        if let Line::Pseudonym(p) = l {
            match notes.get(p) {
                Some(n) => match n.split_once(": ") {
                    Some((why, path)) => println!("  {path}  (auto: {why})"),
                    None => println!("  {n}"),
                },
                None => println!("  {p}  (no note)"),
            }
        }
    }
}

/// A learned namespace recomputed with the run's outputs as pseudonyms, and every pseudonym's
/// note.
pub struct Learned {
    /// The recomputed namespace.
    pub ns: Namespace,
    /// Notes of the pseudonyms (those of the extended model, then the new ones).
    pub notes: BTreeMap<Digest, String>,
    /// Regular files the run created that are still there when it ends (pseudonyms now), then
    /// directories it created that are still there (what lies beneath is named by the rules):
    /// the next run finds them, and may do what this run never did with them (read, append,
    /// skip a step that made them).
    pub created_left: Vec<RawStr>,
    /// How many of `created_left` are directories (the last ones).
    pub dirs_left: usize,
}

impl Learned {
    /// One line for a single learning run that left files it created behind, if it did.
    pub fn next_run_warning(&self) -> Option<String> {
        let n = self.created_left.len();
        if n == 0 {
            return None;
        }
        let (files, dirs) = ((n - self.dirs_left) as u64, self.dirs_left as u64);
        let what = match (files, dirs) {
            (0, d) => format!("{d} {}", plural(d, "directory", "directories")),
            (f, 0) => format!("{f} {}", plural(f, "file", "files")),
            (f, d) => format!(
                "{f} {} and {d} {}",
                plural(f, "file", "files"),
                plural(d, "directory", "directories")
            ),
        };
        let mut shown: Vec<String> = self
            .created_left
            .iter()
            .take(3)
            .map(ToString::to_string)
            .collect();
        if n > 3 {
            shown.push(format!("and {} more", n - 3));
        }
        Some(format!(
            "tsem: {what} this run created {} still there ({}): the next run will find {}, so it \
             may do what this one did not; learn again (`tsem learn`, or `tsem run --learn --model \
             M -o M` once more) before enforcing",
            if n == 1 { "is" } else { "are" },
            shown.join(", "),
            if n == 1 { "it" } else { "them" },
        ))
    }
}

/// After a learning run: make every output of the run a pseudonym (unless `auto` is off) and
/// model the run's descriptions again with them, on top of `base` (the model being extended), so
/// that one run's outputs do not pin what the next run is held to.
pub fn relearn(
    ns: &Namespace,
    base: Option<&ModelFile>,
    outputs: Option<&OutputTracker>,
) -> anyhow::Result<Learned> {
    let e = |e: tsem_core::namespace::NamespaceError| anyhow::anyhow!("{e}");
    let mut fresh = Namespace::new(*ns.config()).map_err(e)?;
    let mut notes = BTreeMap::new();
    let mut created_left = Vec::new();
    match base {
        Some(m) => {
            let mut m = m.clone();
            m.lines.retain(|l| !matches!(l, Line::Seal));
            m.load_into(&mut fresh, Some(ns.aggregate())).map_err(e)?;
            notes = pseudonym_notes(&m);
        }
        None => {
            if !ns.base().is_zero() {
                fresh.set_base(ns.base()).map_err(e)?;
            }
            fresh.set_aggregate(ns.aggregate()).map_err(e)?;
        }
    }
    for p in ns.pseudonyms() {
        fresh.add_pseudonym(*p).map_err(e)?;
    }
    for (path, o) in outputs.into_iter().flat_map(OutputTracker::outputs) {
        // The path's exact bytes: a name that is not UTF-8 is an output like any other.
        let fs_path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
        let meta = std::fs::symlink_metadata(fs_path).ok();
        // Devices, directories, FIFOs and sockets always hash as the zero digest (spec §3.4).
        if meta.as_ref().is_some_and(|m| !m.file_type().is_file()) || !o.keep(meta.is_some()) {
            continue;
        }
        if o.created_here && meta.is_some() {
            created_left.push(path.clone());
        }
        let p = fresh.mapper().pseudonym(path);
        fresh.add_pseudonym(p).map_err(e)?;
        notes.entry(p).or_insert_with(|| note(path, &o));
    }
    let mut dirs_left = 0;
    for d in outputs.into_iter().flat_map(OutputTracker::created_dirs) {
        let fs_path = std::path::Path::new(std::ffi::OsStr::from_bytes(d.as_bytes()));
        if std::fs::symlink_metadata(fs_path).is_ok_and(|m| m.is_dir()) {
            created_left.push(d.clone());
            dirs_left += 1;
        }
    }
    for ev in ns.trajectory() {
        fresh.model(0, ev).map_err(e)?;
    }
    Ok(Learned {
        ns: fresh,
        notes,
        created_left,
        dirs_left,
    })
}

/// `events` with the pseudonyms of `ns` applied (file digests of pseudonymous paths zeroed), so
/// they replay to the same points with or without the model.
pub fn with_pseudonyms(ns: &Namespace, events: &[Event]) -> Vec<Event> {
    let set: HashSet<Digest> = ns.pseudonyms().copied().collect();
    let mut mapper = tsem_core::map::Mapper::new(ns.alg(), ns.config().mapping);
    let zero = ns.alg().zero_digest();
    events
        .iter()
        .map(|ev| {
            let mut ev = ev.clone();
            if !set.is_empty()
                && let Some(f) = ev.file_mut()
                && set.contains(&mapper.pseudonym(&f.path.pathname))
            {
                f.digest = zero;
            }
            ev
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rules_and_notes_round_trip_through_a_model_file() {
        let ns = Namespace::new(tsem_core::namespace::Config::default()).unwrap();
        let mut ns = ns;
        let p = ns.mapper().pseudonym("/w/report.txt");
        ns.add_pseudonym(p).unwrap();
        let mut notes = BTreeMap::new();
        notes.insert(p, "written: /w/report.txt".to_string());
        let m = model_file(&ns, RuleSet::DEFAULT, &notes);
        let text = m.to_text();
        assert!(
            text.starts_with("# tsem-rules: created-subtree-v1,proc-pid-v1,prctl-args-v1\n"),
            "{text}"
        );
        assert!(text.contains("# auto-pseudonym written: /w/report.txt\npseudonym "));
        let back = ModelFile::parse(&text).unwrap();
        assert_eq!(rules_of(&back).unwrap(), RuleSet::DEFAULT);
        assert_eq!(pseudonym_notes(&back), notes);
        let bad =
            ModelFile::parse("# tsem-rules: created-subtree-v1,proc-pid-v7\nseal\nend\n").unwrap();
        assert!(rules_of(&bad).is_err());
    }
}
