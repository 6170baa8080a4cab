//! Per-thread credentials: capabilities and supplementary groups of the calling thread alone,
//! and a notification thread wearing the credentials of the task it acts for ([`wear`]).

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

/// One of the two `__user_cap_data_struct` records (capabilities 0-31, then 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct CapData {
    /// Effective set.
    pub effective: u32,
    /// Permitted set.
    pub permitted: u32,
    /// Inheritable set.
    pub inheritable: u32,
}

/// The calling thread's capabilities.
pub fn capget() -> io::Result<[CapData; 2]> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: the kernel writes two CapData records (version 3) and reads the header.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(d)
}

/// Set the calling thread's capabilities.
pub fn capset(d: &[CapData; 2]) -> io::Result<()> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: the kernel reads the header and two CapData records.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the calling thread's supplementary groups (the raw syscall: this thread only, unlike
/// libc's, which changes every thread of the process).
pub fn thread_setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: the kernel reads `groups.len()` gids from the slice.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `CAP_SETGID`, `CAP_SETUID`, `CAP_SETPCAP`: what switching ids and securebits takes.
const SWITCH_CAPS: u64 = (1 << 6) | (1 << 7) | (1 << 8);

/// `SECBIT_NO_SETUID_FIXUP`: uid changes leave the capability sets alone, so the thread keeps
/// its permitted set (and can switch back) whatever ids it wears.
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;

/// The credentials the kernel checks when the supervisor performs a call for a task: what a
/// notification thread wears. Real and saved ids stay the thread's own (no performed call
/// checks them, and they let the thread switch back).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Creds {
    /// Effective uid (peer credentials, `/proc` ownership checks).
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Filesystem uid: permission checks and the owner of what is created.
    pub fsuid: u32,
    /// Filesystem gid.
    pub fsgid: u32,
    /// Supplementary groups, sorted as the kernel keeps them.
    pub groups: Vec<u32>,
    /// Effective capabilities.
    pub capeff: u64,
}

impl Creds {
    /// The credentials of a task as its `/proc/<tid>/status` gives them.
    pub fn of(coe: &tsem_core::event::Coe, groups: &[u32]) -> Self {
        let mut groups = groups.to_vec();
        groups.sort_unstable();
        groups.dedup();
        Self {
            euid: coe.euid,
            egid: coe.egid,
            fsuid: coe.fsuid,
            fsgid: coe.fsgid,
            groups,
            capeff: coe.capeff,
        }
    }
}

/// Why a thread does not wear the credentials it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum WearError {
    /// The thread may not take other credentials: it lacks `CAP_SETUID`, `CAP_SETGID` or
    /// `CAP_SETPCAP`, or the capabilities asked are not among its permitted ones.
    #[error("this thread cannot take these credentials")]
    Unable,
    /// A switch failed, or what the thread wears afterwards is not what was asked; it wears its
    /// own credentials again.
    #[error("switching credentials: {0}")]
    Switch(String),
    /// Going back to the thread's own credentials failed: it holds credentials nobody chose and
    /// must not act any more.
    #[error("cannot take the thread's own credentials back: {0}")]
    Stuck(String),
}

/// One thread's credentials: its own (`home`, and its capability sets `caps`), and what it
/// wears outside [`inspecting`] (`None`: unknown, after a failed switch).
#[derive(Clone)]
struct Thread {
    home: Creds,
    caps: [CapData; 2],
    able: bool,
    /// `SECBIT_NO_SETUID_FIXUP` is set (at the first switch: a thread that never switches,
    /// the tracer's, is left as it was).
    fixup_off: bool,
    worn: Option<Creds>,
    /// Depth of [`inspecting`] calls: nested ones change nothing.
    inspecting: u32,
}

thread_local! {
    static THREAD: std::cell::RefCell<Option<Thread>> = const { std::cell::RefCell::new(None) };
}

fn raw(r: libc::c_long, what: &str) -> Result<libc::c_long, String> {
    if r < 0 {
        Err(format!("{what}: {}", io::Error::last_os_error()))
    } else {
        Ok(r)
    }
}

/// The credentials the calling thread holds now, read back from the kernel.
pub fn thread_creds() -> io::Result<Creds> {
    let (mut r, mut e, mut s) = (0u32, 0u32, 0u32);
    // SAFETY: getresuid writes three uid_t through the pointers, which are valid.
    let rc = unsafe { libc::syscall(libc::SYS_getresuid, &mut r, &mut e, &mut s) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut gr, mut ge, mut gs) = (0u32, 0u32, 0u32);
    // SAFETY: getresgid writes three gid_t through the pointers, which are valid.
    let rc = unsafe { libc::syscall(libc::SYS_getresgid, &mut gr, &mut ge, &mut gs) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // setfsuid/setfsgid with an invalid id (-1) change nothing and return the current one.
    // SAFETY: integer argument only.
    let fsuid = unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) } as u32;
    // SAFETY: integer argument only.
    let fsgid = unsafe { libc::syscall(libc::SYS_setfsgid, u32::MAX) } as u32;
    // SAFETY: with size 0 getgroups writes nothing and returns the count.
    let n = unsafe { libc::syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<u32>()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut groups = vec![0u32; n as usize];
    // SAFETY: the kernel writes at most `groups.len()` gids into the vector.
    let m = unsafe { libc::syscall(libc::SYS_getgroups, groups.len(), groups.as_mut_ptr()) };
    if m < 0 {
        return Err(io::Error::last_os_error());
    }
    groups.truncate(m as usize);
    groups.sort_unstable();
    let caps = capget()?;
    Ok(Creds {
        euid: e,
        egid: ge,
        fsuid,
        fsgid,
        groups,
        capeff: u64::from(caps[0].effective) | (u64::from(caps[1].effective) << 32),
    })
}

fn effective(caps: &[CapData; 2], capeff: u64) -> [CapData; 2] {
    let mut c = *caps;
    c[0].effective = capeff as u32;
    c[1].effective = (capeff >> 32) as u32;
    c
}

fn permitted(caps: &[CapData; 2]) -> u64 {
    u64::from(caps[0].permitted) | (u64::from(caps[1].permitted) << 32)
}

impl Thread {
    /// The calling thread as it is now: its credentials are its own.
    fn new() -> Self {
        let (home, caps) = match (thread_creds(), capget()) {
            (Ok(h), Ok(c)) => (h, c),
            // Nothing known: it can wear nothing, and matches no task.
            _ => (
                Creds {
                    euid: u32::MAX,
                    ..Creds::default()
                },
                [CapData::default(); 2],
            ),
        };
        let able = home.capeff & SWITCH_CAPS == SWITCH_CAPS;
        Self {
            worn: Some(home.clone()),
            home,
            caps,
            able,
            fixup_off: false,
            inspecting: 0,
        }
    }

    /// Apply `want` (after the thread's own capabilities, which allow every switch), then read
    /// back what the thread holds.
    fn apply(&mut self, want: &Creds) -> Result<(), String> {
        // Until the read-back, what the thread wears is unknown.
        let prev = self.worn.take();
        if prev.as_ref().is_none_or(|p| p.capeff != self.home.capeff) {
            raw(capset_raw(&self.caps), "capset")?;
        }
        if prev.as_ref().is_none_or(|p| p.groups != want.groups) {
            // SAFETY: the kernel reads `groups.len()` gids from the slice (this thread only).
            let r = unsafe {
                libc::syscall(libc::SYS_setgroups, want.groups.len(), want.groups.as_ptr())
            };
            raw(r, "setgroups")?;
        }
        // SAFETY: integer arguments; -1 leaves the real and saved gid alone.
        let r = unsafe { libc::syscall(libc::SYS_setresgid, u32::MAX, want.egid, u32::MAX) };
        raw(r, "setresgid")?;
        // SAFETY: integer argument (a refusal shows in the read-back).
        unsafe { libc::syscall(libc::SYS_setfsgid, want.fsgid) };
        // SAFETY: integer arguments; -1 leaves the real and saved uid alone.
        let r = unsafe { libc::syscall(libc::SYS_setresuid, u32::MAX, want.euid, u32::MAX) };
        raw(r, "setresuid")?;
        // SAFETY: integer argument (a refusal shows in the read-back).
        unsafe { libc::syscall(libc::SYS_setfsuid, want.fsuid) };
        if want.capeff != self.home.capeff {
            raw(
                capset_raw(&effective(&self.caps, want.capeff)),
                "capset (effective)",
            )?;
        }
        let got = thread_creds().map_err(|e| format!("reading back: {e}"))?;
        if got != *want {
            return Err(format!("wears {got:?} instead of {want:?}"));
        }
        self.worn = Some(got);
        Ok(())
    }

    fn go_home(&mut self) -> Result<(), WearError> {
        if self.worn.as_ref() == Some(&self.home) {
            return Ok(());
        }
        let home = self.home.clone();
        self.apply(&home).map_err(WearError::Stuck)
    }

    fn wear(&mut self, want: &Creds) -> Result<(), WearError> {
        if self.worn.as_ref() == Some(want) {
            return Ok(());
        }
        if self.able && !self.fixup_off {
            // Before anything changes: without it the thread cannot wear other ids and keep
            // its capabilities.
            self.able = no_setuid_fixup().is_ok();
            self.fixup_off = self.able;
        }
        if !self.able || want.capeff & !permitted(&self.caps) != 0 {
            self.go_home()?;
            return Err(WearError::Unable);
        }
        match self.apply(want) {
            Ok(()) => Ok(()),
            Err(why) => {
                self.go_home()?;
                Err(WearError::Switch(why))
            }
        }
    }

    fn worn_capeff(&self) -> Option<u64> {
        self.worn.as_ref().map(|w| w.capeff)
    }
}

fn capset_raw(d: &[CapData; 2]) -> libc::c_long {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: the kernel reads the header and two CapData records.
    unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) }
}

/// Keep the capability sets across uid changes on the calling thread (securebits are per
/// thread).
fn no_setuid_fixup() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let bits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS) };
    if bits < 0 {
        return Err(io::Error::last_os_error());
    }
    let want = bits as libc::c_ulong | SECBIT_NO_SETUID_FIXUP;
    // SAFETY: integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, want) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn with_thread<R>(f: impl FnOnce(&mut Thread) -> R) -> R {
    THREAD.with(|t| {
        let mut t = t.borrow_mut();
        f(t.get_or_insert_with(Thread::new))
    })
}

/// The record of what the calling thread wears, for a helper thread it starts to perform a
/// blocking call: the kernel gives the helper the same credentials, but the helper must also
/// know which of them are the supervisor's own (for [`inspecting`]). See [`continue_wearing`].
#[derive(Clone)]
pub struct Wearing(Thread);

/// See [`Wearing`].
pub fn wearing() -> Wearing {
    with_thread(|t| Wearing(t.clone()))
}

/// In a helper thread, first thing: take over the record of the thread that started it. If the
/// credentials it got are not the ones recorded as worn, it records them as unknown, so that it
/// performs nothing for a task.
pub fn continue_wearing(w: Wearing) {
    let mut t = w.0;
    t.inspecting = 0;
    if t.worn.is_some() && thread_creds().ok() != t.worn {
        t.worn = None;
    }
    THREAD.with(|c| *c.borrow_mut() = Some(t));
}

/// Make the calling thread wear `want` (ids, groups, effective capabilities), switching only
/// when it wears something else. Raw syscalls: this thread alone changes, never the process.
/// On any error it wears its own credentials again, except [`WearError::Stuck`].
pub fn wear(want: &Creds) -> Result<(), WearError> {
    with_thread(|t| t.wear(want))
}

/// Make the calling thread wear its own credentials again.
pub fn wear_own() -> Result<(), WearError> {
    with_thread(Thread::go_home)
}

/// Whether the calling thread wears exactly `c` (outside [`inspecting`]).
pub fn wears(c: &Creds) -> bool {
    with_thread(|t| t.worn.as_ref() == Some(c))
}

/// Run `f` with the thread's own capabilities, for what the supervisor does as itself in the
/// middle of a call performed with a task's credentials: reading the task's memory, `/proc`
/// links and descriptors (ptrace access checks), hashing files, asking the model. The ids stay
/// worn (the thread's own capabilities override what they would deny). Free when the thread
/// wears its own capabilities. If the task's capabilities cannot be put back afterwards, the
/// thread records that it no longer wears them, so no later check takes it for the task.
pub fn inspecting<R>(f: impl FnOnce() -> R) -> R {
    let toggled = with_thread(|t| {
        if t.inspecting > 0 || t.worn_capeff() == Some(t.home.capeff) {
            t.inspecting += 1;
            return Some(false);
        }
        if capset_raw(&t.caps) < 0 {
            // The thread keeps the task's capabilities: what follows fails closed.
            return None;
        }
        t.inspecting += 1;
        Some(true)
    });
    let r = f();
    if let Some(toggled) = toggled {
        with_thread(|t| {
            t.inspecting -= 1;
            if toggled {
                let back = t.worn_capeff().unwrap_or(0);
                if capset_raw(&effective(&t.caps, back)) < 0 {
                    t.worn = None;
                }
            }
        });
    }
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn nobody_like() -> Creds {
        Creds {
            euid: 1234,
            egid: 1234,
            fsuid: 1234,
            fsgid: 1234,
            groups: vec![5555],
            capeff: 0,
        }
    }

    /// A thread wears other ids, groups and capabilities; the process's other threads keep
    /// theirs; what it creates belongs to the worn fsuid; `inspecting` lends it its own
    /// capabilities for a moment; it goes back to exactly its own. Root only.
    #[test]
    fn a_thread_wears_credentials_alone_and_takes_its_own_back() {
        let own = thread_creds().unwrap();
        if own.capeff & SWITCH_CAPS != SWITCH_CAPS {
            eprintln!("skipped: switching credentials needs CAP_SETUID, CAP_SETGID, CAP_SETPCAP");
            return;
        }
        let dir = std::env::temp_dir().join(format!("tsem-creds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let file = dir.join("made");
        let main_tid = crate::sys::gettid();
        let (f, main_own) = (file.clone(), own.clone());
        std::thread::spawn(move || {
            let want = nobody_like();
            wear(&want).unwrap();
            assert_eq!(thread_creds().unwrap(), want);
            assert!(wears(&want));
            // The other thread is untouched (credentials are per thread).
            let other = crate::procfs::read_status(main_tid).unwrap();
            assert_eq!(Creds::of(&other.coe, &other.groups), main_own);
            std::fs::write(&f, b"x").unwrap();
            let inside = inspecting(|| thread_creds().unwrap());
            assert_eq!(inside.capeff, main_own.capeff, "its own capabilities lent");
            assert_eq!(inside.fsuid, 1234, "the ids stay worn");
            assert_eq!(thread_creds().unwrap(), want, "worn again after inspecting");
            // A helper thread started now wears the same, and knows its own capabilities.
            let w = wearing();
            let (hw, hown) = (want.clone(), main_own.clone());
            std::thread::spawn(move || {
                continue_wearing(w);
                assert!(wears(&hw));
                assert_eq!(inspecting(|| thread_creds().unwrap()).capeff, hown.capeff);
                assert_eq!(thread_creds().unwrap(), hw);
            })
            .join()
            .unwrap();
            // Capabilities it does not have cannot be worn: it is back to its own.
            let too_much = Creds {
                capeff: 1 << 63,
                ..want
            };
            assert!(matches!(wear(&too_much), Err(WearError::Unable)));
            assert_eq!(thread_creds().unwrap(), main_own);
            wear(&nobody_like()).unwrap();
            wear_own().unwrap();
            assert_eq!(thread_creds().unwrap(), main_own);
        })
        .join()
        .unwrap();
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 1234));
        assert_eq!(thread_creds().unwrap(), own);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
