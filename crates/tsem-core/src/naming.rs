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

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::event::{Cell, Created, Dentry, Event, EventType, PathRef, SockAddr};
use crate::hash::{Digest, HashAlg};
use crate::map::{Mapper, Mapping};
use crate::raw::RawStr;

mod ids;
mod prctl;
mod procfs;

use ids::map_task_ids;
use prctl::prctl_args;
use procfs::proc_pid;

/// The name of the created-subtree rule in a model's `# tsem-rules:` line.
pub const CREATED_SUBTREE_V1: &str = "created-subtree-v1";

/// The name of the procfs pid rule.
pub const PROC_PID_V1: &str = "proc-pid-v1";

/// The name of the rule zeroing task_prctl arguments the option does not use.
pub const PRCTL_ARGS_V1: &str = "prctl-args-v1";

/// `PROC_SUPER_MAGIC`.
const PROC_MAGIC: u32 = 0x9fa0;

/// Created dentry paths kept per (device, owner, instance) until the device's mount is learnt.
const PENDING_PER_KEY: usize = 64;

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
    /// `prctl-args-v1`: task_prctl arguments the option ignores or reads as a pointer are 0.
    pub prctl_args: bool,
}

/// A rule list that names a rule this version does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRule(pub String);

impl fmt::Display for UnknownRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown naming rule {:?} (this tsem knows {CREATED_SUBTREE_V1}, {PROC_PID_V1} and \
             {PRCTL_ARGS_V1}); a model made with rules that are not applied would name events \
             differently",
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
        prctl_args: false,
    };
    /// The rules `tsem run --learn` and `tsem learn` use by default.
    pub const DEFAULT: Self = Self {
        created_subtree: true,
        proc_pid: true,
        prctl_args: true,
    };

    /// Whether no rule applies.
    pub fn is_empty(&self) -> bool {
        !self.created_subtree && !self.proc_pid && !self.prctl_args
    }

    /// Both sets of rules.
    pub fn union(self, o: Self) -> Self {
        Self {
            created_subtree: self.created_subtree || o.created_subtree,
            proc_pid: self.proc_pid || o.proc_pid,
            prctl_args: self.prctl_args || o.prctl_args,
        }
    }

    /// Parse a comma-separated list of rule names (`none` or empty for no rules).
    pub fn parse(list: &str) -> Result<Self, UnknownRule> {
        let mut r = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                CREATED_SUBTREE_V1 => r.created_subtree = true,
                PROC_PID_V1 => r.proc_pid = true,
                PRCTL_ARGS_V1 => r.prctl_args = true,
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
        if self.prctl_args {
            v.push(PRCTL_ARGS_V1);
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

/// How a filesystem's DENTRY paths become FILE paths: the part of the filesystem mounted
/// (`root`, mountinfo's fourth field: `/` for a whole filesystem, the directory's path for a bind
/// mount, such as a container's or a chroot's root) appears at `point`. Both are kept without a
/// trailing `/`, so `/` is empty: FILE = point ++ (DENTRY minus root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountMap {
    /// The mounted part's root within its filesystem (empty for `/`).
    pub root: RawStr,
    /// Where it is mounted (empty for `/`).
    pub point: RawStr,
}

/// Who created an object: the owner its name carries, and the identity (TASK_ID and parent's
/// TASK_ID, as renamed) of the task whose event created it, which its removal is named by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Creator {
    owner: Digest,
    task: Digest,
    parent: Digest,
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
    /// Created objects by device and filesystem-relative raw path (bytes, as the kernel holds
    /// them): who created each.
    created: BTreeMap<Dev, BTreeMap<RawStr, Creator>>,
    /// Where each device's filesystem is mounted, learnt from a created object seen both as a
    /// dentry and as a file; absent means its root at `/` (the pathnames agree).
    mounts: BTreeMap<Dev, MountMap>,
    /// Recent created dentry paths per (device, owner, instance), to learn `mounts` from. The
    /// instance counts per directory, so one key may name objects in several directories.
    pending: BTreeMap<(Dev, Digest, u64), Vec<RawStr>>,
    /// The last absolute Unix socket address bound, and by whom: the inode_mknod that follows
    /// names the same node as a dentry, which places its device's mount as a created file does.
    bound_at: Option<(Digest, RawStr)>,
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
        if self.rules.prctl_args
            && let Cell::TaskPrctl { option, args } = &mut ev.cell
        {
            prctl_args(*option, args);
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
        let parent = ev.header.p_task_id;
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
            } if ty == EventType::SocketBind => {
                if address.starts_with(b"/") {
                    self.bound_at = Some((task, address.clone()));
                }
                self.bound(address, task);
            }
            Cell::InodeMknod { dentry, mode, .. } if *mode & 0o170000 == 0o140000 => {
                // A socket's node, after its bind: the bound address (a FILE path) and this
                // dentry name one object, so they place the device's mount (in a chroot or a
                // container whose root is a bound directory the two differ).
                let dev = dentry.path.dev;
                if let (Some((binder, address)), Some(_)) = (self.bound_at.take(), dev)
                    && binder == task
                    && !self.mounts.contains_key(&dev)
                    && let Some(m) = mount_from([dentry.path.pathname.as_bytes()], &address)
                {
                    self.mounts.insert(dev, m);
                }
                self.record(dentry, task, parent);
                self.dentry(dentry);
            }
            Cell::SockAddr {
                addr: Some(SockAddr::Unix { address }),
                ..
            } => self.loose(address),
            Cell::InodeCreate { dentry, .. } | Cell::InodeMknod { dentry, .. } => {
                self.record(dentry, task, parent);
                self.dentry(dentry);
            }
            Cell::InodeSymlink {
                dentry, old_name, ..
            } => {
                self.record(dentry, task, parent);
                self.dentry(dentry);
                self.loose(old_name);
            }
            Cell::InodeLink(l) => {
                self.dentry(&mut l.old_dentry);
                self.record(&l.new_dentry, task, parent);
                self.dentry(&mut l.new_dentry);
            }
            Cell::InodeDirEntry { dentry, .. } => {
                let raw = (dentry.path.dev, dentry.path.pathname.clone());
                self.dentry(dentry);
                if matches!(ty, EventType::InodeUnlink | EventType::InodeRmdir) {
                    // Removing what the namespace created is named as by its creator: which of
                    // the workload's tasks gets there first (a detached helper cleaning up its
                    // own lock, or the job's `rm -rf` of the whole tree) is a race, not a
                    // difference in what the workload may do.
                    if let Some(c) = self.creator(raw.0, &raw.1) {
                        ev.header.task_id = c.task;
                        ev.header.p_task_id = c.parent;
                    }
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
    pub fn is_canonical_created(pathname: &[u8]) -> bool {
        pathname
            .split(|&b| b == b'/')
            .any(|c| c.starts_with(CREATED_TOKEN.as_bytes()))
    }

    /// Whether a proper ancestor of `path` (a FILE path if `file`, else a DENTRY path) is a
    /// directory the namespace created.
    pub fn beneath_created(&self, dev: Dev, path: &[u8], file: bool) -> bool {
        let Some(m) = self.created.get(&dev) else {
            return false;
        };
        let full: Cow<'_, [u8]> = if file {
            match self.to_dentry(dev, path) {
                Some(r) => r,
                None => return false,
            }
        } else {
            Cow::Borrowed(path)
        };
        // Every proper prefix ending before a `/` (past the leading one) is an ancestor.
        full.iter()
            .enumerate()
            .skip(1)
            .filter(|&(_, &b)| b == b'/')
            .any(|(i, _)| m.contains_key(&full[..i]))
    }

    /// The absolute pathname of a DENTRY path on `dev`, as FILE paths name it. A path outside
    /// the mounted part of its filesystem (not beneath the mount's root) is returned as it is.
    pub fn absolute(&self, dev: Dev, dentry_path: &[u8]) -> RawStr {
        let Some(m) = self.mounts.get(&dev) else {
            return dentry_path.into();
        };
        let Some(rest) = beneath(dentry_path, &m.root) else {
            return dentry_path.into();
        };
        let mut out = Vec::with_capacity(m.point.len() + rest.len());
        out.extend_from_slice(&m.point);
        out.extend_from_slice(rest);
        out.into()
    }

    /// Whether the namer learnt where `dev`'s filesystem is mounted (a created object seen both
    /// as a dentry and as a file); until then its DENTRY paths are taken as absolute.
    pub fn knows_mount(&self, dev: Dev) -> bool {
        self.mounts.contains_key(&dev)
    }

    /// How many devices' mounts the namer has learnt (it only grows).
    pub fn mounts_known(&self) -> usize {
        self.mounts.len()
    }

    /// Where `dev`'s filesystem is mounted, as far as the namer learnt it (`/` is empty).
    fn mount(&self, dev: Dev) -> &[u8] {
        self.mounts
            .get(&dev)
            .map_or(&[][..], |m| m.point.as_bytes())
    }

    /// The root of the mounted part of `dev`'s filesystem (`/` is empty).
    fn root(&self, dev: Dev) -> &[u8] {
        self.mounts.get(&dev).map_or(&[][..], |m| m.root.as_bytes())
    }

    /// The DENTRY path of the FILE path `path` on `dev`, if it lies beneath the mount point.
    fn to_dentry<'a>(&self, dev: Dev, path: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        let rel = beneath(path, self.mount(dev))?;
        let root = self.root(dev);
        Some(if root.is_empty() {
            Cow::Borrowed(rel)
        } else {
            let mut full = Vec::with_capacity(root.len() + rel.len());
            full.extend_from_slice(root);
            full.extend_from_slice(rel);
            Cow::Owned(full)
        })
    }

    /// Who created the object at the raw DENTRY path `path` on `dev`, if the namespace did.
    fn creator(&self, dev: Dev, path: &[u8]) -> Option<Creator> {
        self.created.get(&dev)?.get(path).copied()
    }

    fn record(&mut self, d: &Dentry, task: Digest, parent: Digest) {
        let task = self.ids.get(&task).copied().unwrap_or(task);
        let owner = d.path.created.map_or(task, |c| c.owner);
        let creator = Creator {
            owner,
            task,
            parent,
        };
        // Kept only until the device's mount point is known.
        if let Some(c) = d.path.created
            && !self.mounts.contains_key(&d.path.dev)
        {
            let v = self
                .pending
                .entry((d.path.dev, c.owner, c.instance))
                .or_default();
            if v.len() == PENDING_PER_KEY {
                v.remove(0);
            }
            v.push(d.path.pathname.clone());
        }
        self.created
            .entry(d.path.dev)
            .or_default()
            .insert(d.path.pathname.clone(), creator);
    }

    /// Forget `path` and everything recorded beneath it (removed, or replaced by an object the
    /// namespace did not create).
    fn forget(&mut self, dev: Dev, path: &[u8]) {
        if let Some(m) = self.created.get_mut(&dev) {
            m.retain(|k, _| !under(k, path));
        }
    }

    /// A rename moves the created marks of `old` and what lies beneath it to `new`.
    fn moved(&mut self, old: (Dev, RawStr), new: (Dev, RawStr)) {
        let moving: Vec<(RawStr, Creator)> = self
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
        for (k, c) in moving {
            let mut to = new.1.as_bytes().to_vec();
            to.extend_from_slice(&k[old.1.len()..]);
            m.insert(to.into(), c);
        }
    }

    fn dentry(&mut self, d: &mut Dentry) {
        self.path(&mut d.path, Space::Dentry);
    }

    /// A bare pathname with no device (a unix socket address, a symlink target): renamed if it
    /// lies beneath a created directory of any device whose mount point is known.
    fn loose(&mut self, name: &mut RawStr) {
        if !name.starts_with(b"/") {
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

    /// The address a Unix socket is bound to: the bind creates its node (the inode_mknod that
    /// follows socket_bind), so its last component is named by the binder like any created
    /// object, and what precedes it like any loose pathname. A bind to a name that exists fails
    /// (EADDRINUSE) and creates nothing, whatever it is named.
    fn bound(&mut self, name: &mut RawStr, binder: Digest) {
        let split = name.iter().rposition(|&b| b == b'/');
        let last = split.map_or(&name[..], |i| &name[i + 1..]);
        if last.is_empty() {
            return;
        }
        let mut out: Vec<u8> = match split {
            Some(0) => Vec::new(),
            Some(i) => {
                let mut parent: RawStr = name[..i].into();
                self.loose(&mut parent);
                parent.as_bytes().to_vec()
            }
            None => {
                *name = created_token(binder).into();
                return;
            }
        };
        out.push(b'/');
        out.extend_from_slice(created_token(binder).as_bytes());
        *name = out.into();
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
            None => lookup(&p.pathname),
        };
        if let Some(owner) = owner {
            p.created = Some(Created { owner, instance: 1 });
        }
    }

    fn learn_mount(&mut self, dev: Dev, abs: &[u8], c: Created) {
        if self.mounts.contains_key(&dev) {
            return;
        }
        let Some(candidates) = self.pending.get(&(dev, c.owner, c.instance)) else {
            return;
        };
        if let Some(m) = mount_from(candidates.iter().map(RawStr::as_bytes), abs) {
            self.mounts.insert(dev, m);
            self.pending.retain(|k, _| k.0 != dev);
        }
    }

    /// The canonical name of `path`, if it differs. `own` is the object's creator when the
    /// description itself marks it created. Components are compared and kept as raw bytes: a
    /// name that is not UTF-8 is looked up, replaced or kept exactly like any other.
    fn canonical(
        &self,
        dev: Dev,
        path: &[u8],
        space: Space,
        own: Option<Digest>,
    ) -> Option<RawStr> {
        let created = self.created.get(&dev);
        if created.is_none() && own.is_none() {
            return None;
        }
        // Created objects are keyed by DENTRY path: a FILE path is looked up as the dentry path
        // it names (the mount's root, then the path below the mount point), and written back
        // below the mount point.
        let (mount, full): (&[u8], Cow<'_, [u8]>) = match space {
            Space::File => (self.mount(dev), self.to_dentry(dev, path)?),
            Space::Dentry => (&[], Cow::Borrowed(path)),
        };
        let skip = match space {
            Space::File => self.root(dev).len(),
            Space::Dentry => 0,
        };
        let rel = &full[skip..];
        // The end of each component K_i (i ≥ 1) within `rel`, as an index into `full`: the
        // byte before each `/` past the first, and the end.
        let ends = || {
            rel.iter()
                .enumerate()
                .skip(1)
                .filter(|&(_, &b)| b == b'/')
                .map(move |(i, _)| skip + i)
                .chain(core::iter::once(full.len()))
        };
        // Most paths have no created component: find out without allocating.
        if own.is_none() && !created.is_some_and(|m| ends().any(|e| m.contains_key(&full[..e]))) {
            return None;
        }
        if rel.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(path.len());
        out.extend_from_slice(mount);
        let mut changed = false;
        // Component c0 (before the leading `/`) is empty; each later one runs from the byte
        // after a `/` to its end.
        let mut start = skip + 1;
        for end in ends() {
            out.push(b'/');
            let part = &full[start..end];
            let owner = created
                .and_then(|m| m.get(&full[..end]).map(|c| c.owner))
                .or(if end == full.len() { own } else { None });
            match owner {
                Some(o) if !part.is_empty() => {
                    out.extend_from_slice(CREATED_TOKEN.as_bytes());
                    out.extend_from_slice(o.to_hex().as_bytes());
                    changed = true;
                }
                _ => out.extend_from_slice(part),
            }
            start = end + 1;
        }
        (changed && out != path).then(|| out.into())
    }
}

/// The component that names an object `owner` created: `%created:` and the owner in hex.
fn created_token(owner: Digest) -> String {
    let mut t = String::from(CREATED_TOKEN);
    t.push_str(&owner.to_hex());
    t
}

/// The creator of an object named (already canonically) `pathname`, when the rules know it was
/// created but the description does not say so (FIFOs, sockets, symlinks, links): its last
/// component is a created token.
fn lookup(pathname: &[u8]) -> Option<Digest> {
    if !pathname.contains(&b'/') {
        return None;
    }
    let last = pathname.rsplit(|&b| b == b'/').next()?;
    let owner = last.strip_prefix(CREATED_TOKEN.as_bytes())?;
    Digest::from_hex_bytes(owner).ok()
}

/// What follows `base` in `path` when `path` is `base` or lies beneath it (`base` without a
/// trailing `/`; empty is `/`).
fn beneath<'a>(path: &'a [u8], base: &[u8]) -> Option<&'a [u8]> {
    path.strip_prefix(base)
        .filter(|r| r.is_empty() || r.starts_with(b"/"))
}

/// The mount that shows the object whose DENTRY path is `dentry` at the FILE path `file`: the
/// longest common tail of whole components is the part below the mount; what precedes it is
/// the mount's root in the one and its mount point in the other. Where a root and a mount
/// point end in the same components the tail takes them too, which maps every path beneath the
/// mount point the same way.
fn mount_of(dentry: &[u8], file: &[u8]) -> Option<MountMap> {
    let common = dentry
        .iter()
        .rev()
        .zip(file.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    // Back off to a component boundary: the tail must start with `/` in both.
    let tail = (0..=common)
        .rev()
        .find(|&n| n > 0 && dentry[dentry.len() - n] == b'/' && file[file.len() - n] == b'/')?;
    let root = &dentry[..dentry.len() - tail];
    let point = &file[..file.len() - tail];
    if root.ends_with(b"/") || point.ends_with(b"/") {
        return None;
    }
    Some(MountMap {
        root: root.into(),
        point: point.into(),
    })
}

/// The mount that shows a created object at the FILE path `file`, from the DENTRY paths of
/// recently created objects of the same device, creator and instance (`candidates`, one of
/// which is the object's own). The object's own dentry shares the whole path below the mount's
/// root with `file`; an object of the same creator and instance in another directory shares
/// less. Two different mounts explaining the path equally well teach nothing (`None`).
pub fn mount_from<'a>(
    candidates: impl IntoIterator<Item = &'a [u8]>,
    file: &[u8],
) -> Option<MountMap> {
    let mut best: Option<(usize, MountMap)> = None;
    let mut tie = false;
    for rel in candidates {
        let Some(m) = mount_of(rel, file) else {
            continue;
        };
        let tail = rel.len() - m.root.len();
        match &best {
            Some((t, b)) if tail < *t || (tail == *t && *b == m) => {}
            Some((t, _)) if tail == *t => tie = true,
            _ => {
                best = Some((tail, m));
                tie = false;
            }
        }
    }
    best.filter(|_| !tie).map(|(_, m)| m)
}

/// Whether `k` is `base` or lies beneath it.
fn under(k: &[u8], base: &[u8]) -> bool {
    k.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
