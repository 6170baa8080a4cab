//! Naming rules applied to event descriptions before they are mapped to coefficients, so that
//! what a workload creates never puts a random name into a model.
//!
//! TSEM's own created-file rule (spec §1.5) names a file the namespace created by TEMP: its
//! directory, an instance counter and its creator's TASK_ID. It covers one level only — a file
//! inside a created directory still hashes that directory's random name — and the counter depends
//! on the order in which concurrent tasks create files. The `created-subtree-v1` rule extends it:
//!
//! * every object the namespace creates (inode_create, inode_mkdir, inode_mknod, inode_symlink,
//!   inode_link; a created object renamed elsewhere keeps the mark) is named
//!   `canon(parent) "/" "%created:" hex(owner)`, and its `created` mark carries instance 1;
//! * everything beneath a created directory is named relative to that name, recursively, so a
//!   whole temporary tree (`mktemp -d`, `tempfile.TemporaryDirectory()`, a scratch git
//!   repository) hashes the same in every run;
//! * no counter is kept: objects one task creates in one directory are one class, whatever their
//!   number and whatever the order of concurrent creators (`make -j`, parallel test runners).
//!
//! The transform is a pure function of the event stream (it keeps the set of created paths seen
//! so far), applied alike by `tsem run`, `tsem replay` and `tsem verify`; the model file names it
//! in a `# tsem-rules:` line. Applied to its own output it changes nothing, so trajectories
//! written after it replay to the same points with or without it. The byte-level rule is in
//! `docs/learning.md`.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::event::{Cell, Created, Dentry, Event, EventType, PathRef, SockAddr};
use crate::hash::{Digest, HashAlg};
use crate::map::{Mapper, Mapping};

mod ids;
mod procfs;

use ids::map_task_ids;
use procfs::proc_pid;

/// The name of the created-subtree rule in a model's `# tsem-rules:` line.
pub const CREATED_SUBTREE_V1: &str = "created-subtree-v1";

/// The name of the procfs pid rule.
pub const PROC_PID_V1: &str = "proc-pid-v1";

/// `PROC_SUPER_MAGIC`.
const PROC_MAGIC: u32 = 0x9fa0;

/// The comment a model file carries to name its rules: `# tsem-rules: NAME[,NAME...]`.
pub const RULES_COMMENT: &str = " tsem-rules: ";

/// The first bytes of the path component that replaces a created object's name.
pub const CREATED_TOKEN: &str = "%created:";

/// Which naming rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleSet {
    /// `created-subtree-v1`.
    pub created_subtree: bool,
    /// `proc-pid-v1`: in procfs paths the task's own pid reads `self` and any other pid `%pid`.
    pub proc_pid: bool,
}

/// A rule list that names a rule this version does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRule(pub String);

impl fmt::Display for UnknownRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown naming rule {:?} (this tsem knows {CREATED_SUBTREE_V1} and {PROC_PID_V1}); a \
             model made with rules that are not applied would name events differently",
            self.0
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownRule {}

impl RuleSet {
    /// No rules: plain TSEM model0 (bit-exact with the kernel).
    pub const NONE: Self = Self {
        created_subtree: false,
        proc_pid: false,
    };
    /// The rules `tsem run --learn` and `tsem learn` use by default.
    pub const DEFAULT: Self = Self {
        created_subtree: true,
        proc_pid: true,
    };

    /// Whether no rule applies.
    pub fn is_empty(&self) -> bool {
        !self.created_subtree && !self.proc_pid
    }

    /// Both sets of rules.
    pub fn union(self, o: Self) -> Self {
        Self {
            created_subtree: self.created_subtree || o.created_subtree,
            proc_pid: self.proc_pid || o.proc_pid,
        }
    }

    /// Parse a comma-separated list of rule names (`none` or empty for no rules).
    pub fn parse(list: &str) -> Result<Self, UnknownRule> {
        let mut r = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                CREATED_SUBTREE_V1 => r.created_subtree = true,
                PROC_PID_V1 => r.proc_pid = true,
                "none" => {}
                other => return Err(UnknownRule(other.into())),
            }
        }
        Ok(r)
    }

    /// The comma-separated names (`none` for no rules).
    pub fn names(&self) -> String {
        let mut v = Vec::new();
        if self.created_subtree {
            v.push(CREATED_SUBTREE_V1);
        }
        if self.proc_pid {
            v.push(PROC_PID_V1);
        }
        if v.is_empty() {
            v.push("none");
        }
        v.join(",")
    }
}

/// A device as events carry it (major, minor), if any.
pub type Dev = Option<(u32, u32)>;

/// Which kind of pathname a path is: FILE paths are absolute (`d_absolute_path`), DENTRY paths
/// are relative to the root of their filesystem (`dentry_path_raw`, spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    File,
    Dentry,
}

/// Applies a [`RuleSet`] to a stream of events. One per modeling namespace.
#[derive(Debug, Clone, Default)]
pub struct Namer {
    rules: RuleSet,
    /// Computes TASK_IDs again from renamed executables (none: TASK_IDs are left alone).
    mapper: Option<Mapper>,
    /// TASK_IDs as the sensor computed them → as the renamed executables give them. A program
    /// run from a created tree would otherwise carry its random path in its identity, and so
    /// would every task it starts.
    ids: BTreeMap<Digest, Digest>,
    /// Created objects by device and filesystem-relative raw path: the creator's TASK_ID.
    created: BTreeMap<Dev, BTreeMap<String, Digest>>,
    /// Where each device's filesystem is mounted, learnt from a created object seen both as a
    /// dentry and as a file; absent means `/` (the pathnames agree).
    mounts: BTreeMap<Dev, String>,
    /// The last created dentry path per (device, owner, instance), to learn `mounts` from.
    pending: BTreeMap<(Dev, Digest, u64), String>,
}

impl Namer {
    /// A namer applying `rules` in a namespace hashing with `alg` and `mapping`.
    pub fn new(rules: RuleSet, alg: HashAlg, mapping: Mapping) -> Self {
        Self {
            rules,
            mapper: Some(Mapper::new(alg, mapping)),
            ..Self::default()
        }
    }

    /// The rules applied.
    pub fn rules(&self) -> RuleSet {
        self.rules
    }

    /// Rename `ev` in place by the rules, and remember what it created or removed.
    pub fn apply(&mut self, ev: &mut Event) {
        if self.rules.proc_pid {
            let pid = ev.header.pid;
            if let Some(f) = ev.file_mut()
                && f.inode.s_magic == PROC_MAGIC
            {
                proc_pid(&mut f.path.pathname, pid);
            }
        }
        if !self.rules.created_subtree {
            return;
        }
        let raw_parent = ev.header.p_task_id;
        let raw_id = ev.header.task_id;
        if !self.ids.is_empty() {
            let ids = &self.ids;
            let map = |d: &mut Digest| {
                if let Some(c) = ids.get(d) {
                    *d = *c;
                }
            };
            map(&mut ev.header.p_task_id);
            if ev.header.event_type != EventType::BprmCommittedCreds {
                map(&mut ev.header.task_id);
            }
            map_task_ids(&mut ev.cell, map);
        }
        if ev.header.event_type == EventType::BprmCommittedCreds {
            self.exec(ev);
            return;
        }
        // The userspace sensor reports no bprm_committed_creds: a program's first mapping of
        // its own executable (described as at exec) stands for it.
        if let Cell::MmapFile { file: Some(f), .. } = &mut ev.cell
            && !self.ids.contains_key(&raw_id)
        {
            let raw = f.clone();
            self.path(&mut f.path, Space::File);
            // Only a renamed executable or a renamed parent gives another TASK_ID.
            if raw.path != f.path || raw_parent != ev.header.p_task_id {
                let exe = f.clone();
                let parent = ev.header.p_task_id;
                if let Some(id) = self.identity(raw_id, raw_parent, parent, &ev.coe, &raw, &exe) {
                    ev.header.task_id = id;
                }
            }
            return;
        }
        let task = ev.header.task_id;
        let ty = ev.header.event_type;
        match &mut ev.cell {
            Cell::File(f)
            | Cell::FileCmd { file: f, .. }
            | Cell::KernelReadFile { file: f, .. } => {
                self.path(&mut f.path, Space::File);
            }
            Cell::MmapFile { file: Some(f), .. } => self.path(&mut f.path, Space::File),
            Cell::SbMount { path, .. } => self.path(path, Space::File),
            Cell::TwoPaths(p) => {
                self.path(&mut p.a, Space::File);
                self.path(&mut p.b, Space::File);
            }
            Cell::SockAddr {
                addr: Some(SockAddr::Unix { address }),
                ..
            } => self.loose(address),
            Cell::InodeCreate { dentry, .. } | Cell::InodeMknod { dentry, .. } => {
                self.record(dentry, task);
                self.dentry(dentry);
            }
            Cell::InodeSymlink {
                dentry, old_name, ..
            } => {
                self.record(dentry, task);
                self.dentry(dentry);
                self.loose(old_name);
            }
            Cell::InodeLink(l) => {
                self.dentry(&mut l.old_dentry);
                self.record(&l.new_dentry, task);
                self.dentry(&mut l.new_dentry);
            }
            Cell::InodeDirEntry { dentry, .. } => {
                let raw = (dentry.path.dev, dentry.path.pathname.clone());
                self.dentry(dentry);
                if matches!(ty, EventType::InodeUnlink | EventType::InodeRmdir) {
                    self.forget(raw.0, &raw.1);
                }
            }
            Cell::InodeRename(r) => {
                let old = (r.old_dentry.path.dev, r.old_dentry.path.pathname.clone());
                let new = (r.new_dentry.path.dev, r.new_dentry.path.pathname.clone());
                self.dentry(&mut r.old_dentry);
                self.dentry(&mut r.new_dentry);
                self.moved(old, new);
            }
            Cell::Dentry(d)
            | Cell::InodeGetattr(d)
            | Cell::SbUmount { mnt: d, .. }
            | Cell::InodeSetattr { dentry: d, .. }
            | Cell::InodeSetxattr { dentry: d, .. }
            | Cell::InodeXattr { dentry: d, .. } => self.dentry(d),
            Cell::SbRemount(sb) | Cell::Quotactl { sb, .. } => self.dentry(&mut sb.dentry),
            _ => {}
        }
    }

    /// bprm_committed_creds: rename the executable, then compute the task's TASK_ID again from
    /// the renamed description (spec §3.3) — provided the sensor's TASK_ID is what the raw
    /// description gives, so an unknown layout is never guessed at.
    fn exec(&mut self, ev: &mut Event) {
        let Cell::File(f) = &mut ev.cell else { return };
        let raw = f.clone();
        self.path(&mut f.path, Space::File);
        let raw_id = ev.header.task_id;
        // The parent's TASK_ID in the header is already renamed; the sensor hashed the raw one.
        let raw_parent = self
            .ids
            .iter()
            .find(|(_, c)| **c == ev.header.p_task_id)
            .map_or(ev.header.p_task_id, |(r, _)| *r);
        let exe = f.clone();
        if let Some(id) =
            self.identity(raw_id, raw_parent, ev.header.p_task_id, &ev.coe, &raw, &exe)
        {
            ev.header.task_id = id;
        }
    }

    /// The TASK_ID of a program run as `exe` (renamed) by a task whose parent is `parent`
    /// (renamed), if `raw_id` is what the raw description gives (spec §3.3).
    fn identity(
        &mut self,
        raw_id: Digest,
        raw_parent: Digest,
        parent: Digest,
        coe: &crate::event::Coe,
        raw: &crate::event::FileDesc,
        exe: &crate::event::FileDesc,
    ) -> Option<Digest> {
        let mapper = self.mapper.as_mut()?;
        if mapper.task_id(&raw_parent, coe, raw) != raw_id {
            return None;
        }
        let id = mapper.task_id(&parent, coe, exe);
        if id != raw_id {
            self.ids.insert(raw_id, id);
        }
        Some(id)
    }

    /// Whether `pathname` is a name the rules made (it has a created component).
    pub fn is_canonical_created(pathname: &str) -> bool {
        pathname.split('/').any(|c| c.starts_with(CREATED_TOKEN))
    }

    /// Whether a proper ancestor of `path` (a FILE path if `file`, else a DENTRY path) is a
    /// directory the namespace created.
    pub fn beneath_created(&self, dev: Dev, path: &str, file: bool) -> bool {
        let Some(m) = self.created.get(&dev) else {
            return false;
        };
        let rel = if file {
            let mount = self.mounts.get(&dev).map_or("", String::as_str);
            match path.strip_prefix(mount) {
                Some(r) => r,
                None => return false,
            }
        } else {
            path
        };
        let mut end = rel.len();
        while let Some(i) = rel[..end].rfind('/') {
            if i == 0 {
                break;
            }
            if m.contains_key(&rel[..i]) {
                return true;
            }
            end = i;
        }
        false
    }

    /// The absolute pathname of a DENTRY path on `dev`, as FILE paths name it.
    pub fn absolute(&self, dev: Dev, dentry_path: &str) -> String {
        let mount = self.mounts.get(&dev).map_or("", String::as_str);
        alloc::format!("{mount}{dentry_path}")
    }

    fn record(&mut self, d: &Dentry, task: Digest) {
        let task = self.ids.get(&task).copied().unwrap_or(task);
        let owner = d.path.created.map_or(task, |c| c.owner);
        // Kept only until the device's mount point is known.
        if let Some(c) = d.path.created
            && !self.mounts.contains_key(&d.path.dev)
        {
            self.pending
                .insert((d.path.dev, c.owner, c.instance), d.path.pathname.clone());
        }
        self.created
            .entry(d.path.dev)
            .or_default()
            .insert(d.path.pathname.clone(), owner);
    }

    /// Forget `path` and everything recorded beneath it (removed, or replaced by an object the
    /// namespace did not create).
    fn forget(&mut self, dev: Dev, path: &str) {
        if let Some(m) = self.created.get_mut(&dev) {
            m.retain(|k, _| !under(k, path));
        }
    }

    /// A rename moves the created marks of `old` and what lies beneath it to `new`.
    fn moved(&mut self, old: (Dev, String), new: (Dev, String)) {
        let moving: Vec<(String, Digest)> = self
            .created
            .get(&old.0)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| under(k, &old.1))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            })
            .unwrap_or_default();
        self.forget(old.0, &old.1);
        self.forget(new.0, &new.1);
        let m = self.created.entry(new.0).or_default();
        for (k, owner) in moving {
            m.insert(alloc::format!("{}{}", new.1, &k[old.1.len()..]), owner);
        }
    }

    fn dentry(&mut self, d: &mut Dentry) {
        self.path(&mut d.path, Space::Dentry);
    }

    /// A bare pathname with no device (a unix socket address, a symlink target): renamed if it
    /// lies beneath a created directory of any device whose mount point is known.
    fn loose(&mut self, name: &mut String) {
        if !name.starts_with('/') {
            return;
        }
        let devs: Vec<Dev> = self.created.keys().copied().collect();
        for dev in devs {
            if let Some(c) = self.canonical(dev, name, Space::File, None) {
                *name = c;
                return;
            }
        }
    }

    fn path(&mut self, p: &mut PathRef, space: Space) {
        if space == Space::File
            && let Some(c) = p.created
        {
            self.learn_mount(p.dev, &p.pathname, c);
        }
        let own = p.created.map(|c| c.owner);
        if let Some(c) = self.canonical(p.dev, &p.pathname, space, own) {
            p.pathname = c;
        }
        let owner = match p.created {
            Some(c) => Some(c.owner),
            None => self.lookup(p.dev, &p.pathname, space),
        };
        if let Some(owner) = owner {
            p.created = Some(Created { owner, instance: 1 });
        }
    }

    /// The creator of an object named (already canonically) `pathname`, when the rules know it
    /// was created but the description does not say so (FIFOs, sockets, symlinks, links).
    fn lookup(&self, dev: Dev, pathname: &str, space: Space) -> Option<Digest> {
        let (_, last) = pathname.rsplit_once('/')?;
        let owner = last.strip_prefix(CREATED_TOKEN)?;
        let _ = (dev, space);
        Digest::from_hex(owner).ok()
    }

    fn learn_mount(&mut self, dev: Dev, abs: &str, c: Created) {
        if self.mounts.contains_key(&dev) {
            return;
        }
        if let Some(rel) = self.pending.get(&(dev, c.owner, c.instance))
            && let Some(m) = abs.strip_suffix(rel.as_str())
            && !m.ends_with('/')
        {
            self.mounts.insert(dev, m.into());
            self.pending.retain(|k, _| k.0 != dev);
        }
    }

    /// The canonical name of `path`, if it differs. `own` is the object's creator when the
    /// description itself marks it created.
    fn canonical(&self, dev: Dev, path: &str, space: Space, own: Option<Digest>) -> Option<String> {
        let created = self.created.get(&dev);
        if created.is_none() && own.is_none() {
            return None;
        }
        let mount = match space {
            Space::File => self.mounts.get(&dev).map_or("", String::as_str),
            Space::Dentry => "",
        };
        let rel = path.strip_prefix(mount)?;
        if !(rel.is_empty() || rel.starts_with('/')) {
            return None;
        }
        // Most paths have no created component: find out without allocating.
        let hit = |m: &BTreeMap<String, Digest>| {
            rel.match_indices('/')
                .skip(1)
                .map(|(i, _)| &rel[..i])
                .chain(core::iter::once(rel))
                .any(|k| m.contains_key(k))
        };
        if own.is_none() && !created.is_some_and(hit) {
            return None;
        }
        let mut out = String::with_capacity(path.len());
        out.push_str(mount);
        let mut changed = false;
        let mut end = 0;
        let parts: Vec<&str> = rel.split('/').collect();
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                end += 1;
            }
            end += part.len();
            if i == 0 {
                out.push_str(part);
                continue;
            }
            out.push('/');
            let key = &rel[..end];
            let owner =
                created
                    .and_then(|m| m.get(key).copied())
                    .or(if i + 1 == n { own } else { None });
            match owner {
                Some(o) if !part.is_empty() => {
                    out.push_str(CREATED_TOKEN);
                    out.push_str(&o.to_hex());
                    changed = true;
                }
                _ => out.push_str(part),
            }
        }
        changed.then_some(out).filter(|o| o != path)
    }
}

/// Whether `k` is `base` or lies beneath it.
fn under(k: &str, base: &str) -> bool {
    k.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{Coe, EventHeader, FileDesc, Inode};

    const DEV: Dev = Some((8, 1));

    fn owner(n: u8) -> Digest {
        HashAlg::Sha256.digest(&[n])
    }

    fn ev(ty: EventType, task: Digest, cell: Cell) -> Event {
        Event {
            header: EventHeader::new("t", ty, task, task),
            coe: Coe::default(),
            cell,
        }
    }

    fn dentry(path: &str, created: Option<Created>) -> Dentry {
        Dentry {
            inode: None,
            path: PathRef {
                dev: DEV,
                created,
                path_type: None,
                pathname: path.into(),
            },
        }
    }

    fn mkdir(path: &str, o: Digest, instance: u64) -> Event {
        let c = Created { owner: o, instance };
        ev(
            EventType::InodeMkdir,
            o,
            Cell::InodeCreate {
                dir: Inode::default(),
                dentry: dentry(path, Some(c)),
                mode: 0o700,
            },
        )
    }

    fn open(path: &str, o: Digest, created: Option<Created>) -> Event {
        ev(
            EventType::FileOpen,
            o,
            Cell::File(FileDesc {
                flags: 0,
                inode: Inode::default(),
                path: PathRef {
                    dev: DEV,
                    created,
                    path_type: Some("root".into()),
                    pathname: path.into(),
                },
                digest: HashAlg::Sha256.zero_digest(),
            }),
        )
    }

    fn run(events: &[Event]) -> Vec<Event> {
        let mut n = Namer::new(RuleSet::DEFAULT, HashAlg::Sha256, Mapping::Model0);
        events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                n.apply(&mut e);
                e
            })
            .collect()
    }

    fn stream(dir: &str, file: &str, o: Digest, inst: u64) -> Vec<Event> {
        let c = Created {
            owner: o,
            instance: inst,
        };
        vec![
            mkdir(&alloc::format!("/tmp/{dir}"), o, inst),
            ev(
                EventType::InodeCreate,
                o,
                Cell::InodeCreate {
                    dir: Inode::default(),
                    dentry: dentry(&alloc::format!("/tmp/{dir}/{file}"), Some(c)),
                    mode: 0o600,
                },
            ),
            open(&alloc::format!("/tmp/{dir}/{file}"), o, Some(c)),
            open(&alloc::format!("/tmp/{dir}"), o, Some(c)),
        ]
    }

    #[test]
    fn random_names_and_instances_do_not_reach_the_description() {
        let a = run(&stream("tmpa1b2", "x9z", owner(1), 1));
        let b = run(&stream("tmpQQQQ", "other", owner(1), 7));
        assert_eq!(a, b);
        let Cell::File(f) = &a[2].cell else { panic!() };
        let tok = alloc::format!("{CREATED_TOKEN}{}", owner(1).to_hex());
        assert_eq!(f.path.pathname, alloc::format!("/tmp/{tok}/{tok}"));
        assert_eq!(f.path.created.unwrap().instance, 1);
    }

    #[test]
    fn owners_stay_distinct_and_reads_outside_stay_named() {
        let a = run(&stream("d", "f", owner(1), 1));
        let b = run(&stream("d", "f", owner(2), 1));
        assert_ne!(a, b);
        let mut s = stream("d", "f", owner(1), 1);
        s.push(open("/etc/hosts", owner(1), None));
        let out = run(&s);
        assert_eq!(out[4], s[4]);
    }

    #[test]
    fn idempotent_and_off_by_default() {
        let once = run(&stream("rnd", "f", owner(3), 2));
        assert_eq!(run(&once), once);
        let mut n = Namer::new(RuleSet::NONE, HashAlg::Sha256, Mapping::Model0);
        let mut e = stream("rnd", "f", owner(3), 2)[2].clone();
        let before = e.clone();
        n.apply(&mut e);
        assert_eq!(e, before);
    }

    #[test]
    fn a_mounted_filesystem_learns_its_mount_point() {
        // tmpfs at /tmp: dentries are relative to the tmpfs root, files are absolute.
        let o = owner(4);
        let c = Created {
            owner: o,
            instance: 1,
        };
        let mut n = Namer::new(RuleSet::DEFAULT, HashAlg::Sha256, Mapping::Model0);
        let mut s = [
            mkdir("/rnd", o, 1),
            ev(
                EventType::InodeCreate,
                o,
                Cell::InodeCreate {
                    dir: Inode::default(),
                    dentry: dentry("/rnd/f", Some(c)),
                    mode: 0o600,
                },
            ),
            open("/tmp/rnd/f", o, Some(c)),
            open("/tmp/rnd/g", o, None),
        ];
        for e in &mut s {
            n.apply(e);
        }
        let tok = alloc::format!("{CREATED_TOKEN}{}", o.to_hex());
        let Cell::File(f) = &s[3].cell else { panic!() };
        assert_eq!(f.path.pathname, alloc::format!("/tmp/{tok}/g"));
    }

    /// A program copied into a temporary directory and run: its TASK_ID, and so every event of
    /// it and of what it starts, is the same whatever the directory's name.
    #[test]
    fn programs_run_from_a_created_tree_get_one_identity() {
        let parent = owner(9);
        let o = owner(1);
        let events = |dir: &str| {
            let mut m = Mapper::new(HashAlg::Sha256, Mapping::Model0);
            let c = Created {
                owner: o,
                instance: 3,
            };
            let Cell::File(exe) = open(&alloc::format!("/tmp/{dir}/helper"), o, Some(c)).cell
            else {
                panic!()
            };
            let raw_id = m.task_id(&parent, &Coe::default(), &exe);
            let mut map = ev(
                EventType::MmapFile,
                raw_id,
                Cell::MmapFile {
                    file: Some(exe),
                    prot: 5,
                    flags: 2,
                },
            );
            map.header.p_task_id = parent;
            let mut child = open("/etc/hosts", raw_id, None);
            child.header.p_task_id = parent;
            vec![mkdir(&alloc::format!("/tmp/{dir}"), o, 1), map, child]
        };
        let a = run(&events("tmpAAAA"));
        let b = run(&events("tmpBBBB"));
        assert_eq!(a, b);
        assert_ne!(a[2].header.task_id, events("tmpAAAA")[2].header.task_id);
        // A TASK_ID the raw description does not give is left alone.
        let mut odd = events("tmpCCCC");
        odd[1].header.task_id = owner(77);
        odd[2].header.task_id = owner(77);
        assert_eq!(run(&odd)[2].header.task_id, owner(77));
    }

    #[test]
    fn a_renamed_created_directory_keeps_its_name_and_a_removed_one_loses_it() {
        let o = owner(5);
        let rename = |from: &str, to: &str| {
            let d = |p: &str| dentry(p, None);
            ev(
                EventType::InodeRename,
                o,
                Cell::InodeRename(alloc::boxed::Box::new(crate::event::Rename {
                    old_dir: Inode::default(),
                    old_dentry: d(from),
                    new_dir: Inode::default(),
                    new_dentry: d(to),
                })),
            )
        };
        let rmdir = ev(
            EventType::InodeRmdir,
            o,
            Cell::InodeDirEntry {
                dir: Inode::default(),
                dentry: dentry("/w/final", None),
            },
        );
        let out = run(&[
            mkdir("/w/tmp.x", o, 1),
            mkdir("/w/tmp.x/sub", o, 1),
            rename("/w/tmp.x", "/w/final"),
            open("/w/final/sub/f", o, None),
            open("/w/tmp.x/sub/f", o, None),
            rmdir,
            open("/w/final/sub/f", o, None),
        ]);
        let name = |e: &Event| match &e.cell {
            Cell::File(f) => f.path.pathname.clone(),
            _ => panic!(),
        };
        let tok = alloc::format!("{CREATED_TOKEN}{}", o.to_hex());
        assert_eq!(name(&out[3]), alloc::format!("/w/{tok}/{tok}/f"));
        assert_eq!(
            name(&out[4]),
            "/w/tmp.x/sub/f",
            "the old name is no longer created"
        );
        assert_eq!(
            name(&out[6]),
            "/w/final/sub/f",
            "removed: a later object there is not"
        );
    }

    #[test]
    fn rules_parse_and_reject_unknown_names() {
        assert_eq!(
            RuleSet::parse("created-subtree-v1, proc-pid-v1"),
            Ok(RuleSet::DEFAULT)
        );
        assert_eq!(RuleSet::parse("none"), Ok(RuleSet::NONE));
        assert!(RuleSet::parse("created-subtree-v9").is_err());
        assert_eq!(RuleSet::DEFAULT.names(), "created-subtree-v1,proc-pid-v1");
    }
}
