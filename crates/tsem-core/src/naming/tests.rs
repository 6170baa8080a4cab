//! Tests of the naming rules on synthetic event streams.

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

fn dentry(path: impl AsRef<[u8]>, created: Option<Created>) -> Dentry {
    Dentry {
        inode: None,
        path: PathRef {
            dev: DEV,
            created,
            path_type: None,
            pathname: path.as_ref().into(),
        },
    }
}

fn mkdir(path: impl AsRef<[u8]>, o: Digest, instance: u64) -> Event {
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

fn open(path: impl AsRef<[u8]>, o: Digest, created: Option<Created>) -> Event {
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
                pathname: path.as_ref().into(),
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
        mkdir(alloc::format!("/tmp/{dir}"), o, inst),
        ev(
            EventType::InodeCreate,
            o,
            Cell::InodeCreate {
                dir: Inode::default(),
                dentry: dentry(alloc::format!("/tmp/{dir}/{file}"), Some(c)),
                mode: 0o600,
            },
        ),
        open(alloc::format!("/tmp/{dir}/{file}"), o, Some(c)),
        open(alloc::format!("/tmp/{dir}"), o, Some(c)),
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

#[test]
fn a_bind_mounted_root_learns_its_root_and_mount_point() {
    // A chroot or container whose root is a bind mount of /var/lib/c/rootfs: dentries are
    // relative to the filesystem's root (they carry the host directory), files to the
    // process's root. The temporary tree gets one name in every run and in every host
    // directory.
    let named = |host: &str, rnd: &str| {
        let o = owner(5);
        let c = Created {
            owner: o,
            instance: 1,
        };
        let mut n = Namer::new(RuleSet::DEFAULT, HashAlg::Sha256, Mapping::Model0);
        let mut s = [
            mkdir(alloc::format!("{host}/build/{rnd}"), o, 1),
            open(alloc::format!("/build/{rnd}"), o, Some(c)),
            open(alloc::format!("/build/{rnd}/out.txt"), o, None),
        ];
        for e in &mut s {
            n.apply(e);
        }
        assert!(n.beneath_created(DEV, alloc::format!("/build/{rnd}/x").as_bytes(), true));
        assert!(n.beneath_created(
            DEV,
            alloc::format!("{host}/build/{rnd}/x").as_bytes(),
            false
        ));
        assert_eq!(
            n.absolute(DEV, alloc::format!("{host}/build/a").as_bytes()),
            RawStr::from(&b"/build/a"[..])
        );
        // Outside the mounted part: as it is.
        assert_eq!(n.absolute(DEV, b"/etc/x"), RawStr::from(&b"/etc/x"[..]));
        let Cell::File(f) = &s[2].cell else { panic!() };
        f.path.pathname.clone()
    };
    let tok = alloc::format!("{CREATED_TOKEN}{}", owner(5).to_hex());
    let a = named("/var/lib/c/rootfs", "tmp.Ab3");
    assert_eq!(
        a,
        RawStr::from(alloc::format!("/build/{tok}/out.txt").as_bytes())
    );
    assert_eq!(named("/srv/other", "tmp.Zq9"), a);
}

#[test]
fn the_mount_is_learnt_from_the_object_itself_not_a_namesake() {
    // One task creates `out.txt` (instance 1) in two directories of a bind-mounted root; the
    // open of the first must not be paired with the second's dentry (which shares the name).
    let o = owner(6);
    let c = Created {
        owner: o,
        instance: 1,
    };
    let mk = |p: &str| {
        ev(
            EventType::InodeCreate,
            o,
            Cell::InodeCreate {
                dir: Inode::default(),
                dentry: dentry(p, Some(c)),
                mode: 0o600,
            },
        )
    };
    let mut n = Namer::new(RuleSet::DEFAULT, HashAlg::Sha256, Mapping::Model0);
    let mut s = [
        mkdir("/host/root/w/rnd", o, 1),
        mk("/host/root/w/rnd/out.txt"),
        mk("/host/root/other/dir/out.txt"),
        open("/w/rnd/out.txt", o, Some(c)),
        open("/w/rnd/g", o, None),
    ];
    for e in &mut s {
        n.apply(e);
    }
    let tok = alloc::format!("{CREATED_TOKEN}{}", o.to_hex());
    let Cell::File(f) = &s[4].cell else { panic!() };
    assert_eq!(f.path.pathname, alloc::format!("/w/{tok}/g"));
}

#[test]
fn mount_of_finds_root_and_point_from_one_object() {
    let m = |d: &str, f: &str| mount_of(d.as_bytes(), f.as_bytes()).map(|m| (m.root, m.point));
    let rs = |s: &str| RawStr::from(s.as_bytes());
    assert_eq!(m("/rnd/f", "/tmp/rnd/f"), Some((rs(""), rs("/tmp"))));
    assert_eq!(m("/v/x/build/f", "/build/f"), Some((rs("/v/x"), rs(""))));
    assert_eq!(m("/x/tmp/f", "/tmp/tmp/f"), Some((rs("/x"), rs("/tmp"))));
    // Names that share a suffix but not a whole component.
    assert_eq!(m("/ab/f", "/b/f"), Some((rs("/ab"), rs("/b"))));
    assert_eq!(m("/a/xf", "/b/yf"), None);
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
        let Cell::File(exe) = open(alloc::format!("/tmp/{dir}/helper"), o, Some(c)).cell else {
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
        vec![mkdir(alloc::format!("/tmp/{dir}"), o, 1), map, child]
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
        RuleSet::parse("created-subtree-v1, proc-pid-v1,prctl-args-v1"),
        Ok(RuleSet::DEFAULT)
    );
    assert_eq!(RuleSet::parse("none"), Ok(RuleSet::NONE));
    assert!(RuleSet::parse("created-subtree-v9").is_err());
    assert!(RuleSet::parse("prctl-args-v2").is_err());
    assert_eq!(
        RuleSet::DEFAULT.names(),
        "created-subtree-v1,proc-pid-v1,prctl-args-v1"
    );
    let only = RuleSet::parse("prctl-args-v1").unwrap();
    assert!(only.prctl_args && !only.created_subtree && !only.proc_pid && !only.is_empty());
    assert_eq!(RuleSet::parse(&only.names()), Ok(only));
}

/// Names are bytes: a created tree whose names are not UTF-8 is named by its creator whatever
/// its bytes, and a raw name outside it is kept byte for byte (never replaced, never skipped).
#[test]
fn names_that_are_not_utf8_are_named_by_their_bytes() {
    let o = owner(6);
    let c = Created {
        owner: o,
        instance: 1,
    };
    let events = |dir: &[u8]| {
        let top = [&b"/tmp/"[..], dir].concat();
        let sub = [&top[..], b"/sub\xff"].concat();
        let file = [&sub[..], b"/f\xfe"].concat();
        vec![
            mkdir(&top, o, 1),
            mkdir(&sub, o, 1),
            open(&file, o, Some(c)),
            open(b"/tmp/keep\xff\x01/x", o, None),
        ]
    };
    let a = run(&events(b"tmp\xff\x01a"));
    let b = run(&events(b"tmp\xc3(\x80b"));
    assert_eq!(a, b);
    let name = |e: &Event| match &e.cell {
        Cell::File(f) => f.path.pathname.clone(),
        _ => panic!(),
    };
    let tok = alloc::format!("{CREATED_TOKEN}{}", o.to_hex());
    assert_eq!(name(&a[2]), alloc::format!("/tmp/{tok}/{tok}/{tok}"));
    assert_eq!(name(&a[3]).as_bytes(), b"/tmp/keep\xff\x01/x");
    assert_eq!(run(&a), a, "idempotent on its own output");

    let mut n = Namer::new(RuleSet::DEFAULT, HashAlg::Sha256, Mapping::Model0);
    for mut e in events(b"r\xff") {
        n.apply(&mut e);
    }
    assert!(n.beneath_created(DEV, b"/tmp/r\xff/sub\xff/g", true));
    assert!(!n.beneath_created(DEV, b"/tmp/r\xfe/sub\xff/g", true));
    assert!(Namer::is_canonical_created(name(&a[2]).as_bytes()));
    assert!(!Namer::is_canonical_created(b"/tmp/keep\xff\x01/x"));
}

const PR_CAPBSET_READ: u32 = 23;
const CAP_CHOWN: u64 = 0;

fn prctl(option: u32, args: [u64; 4]) -> Event {
    ev(
        EventType::TaskPrctl,
        owner(9),
        Cell::TaskPrctl { option, args },
    )
}

/// The coefficient of `e` after the namer with `rules` renamed it.
fn coefficient(rules: RuleSet, e: &Event) -> Digest {
    let mut n = Namer::new(rules, HashAlg::Sha256, Mapping::Model0);
    let mut e = e.clone();
    n.apply(&mut e);
    Mapper::new(HashAlg::Sha256, Mapping::Model0).coefficient(&e)
}

/// A small deterministic generator standing in for the garbage glibc's variadic `prctl` leaves
/// in unused argument registers (library addresses that move with ASLR).
fn garbage(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn prctl_capbset_read_ignores_the_garbage_in_unused_arguments() {
    let rules = RuleSet::DEFAULT;
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let base = coefficient(rules, &prctl(PR_CAPBSET_READ, [CAP_CHOWN, 0, 0, 0]));
    for _ in 0..32 {
        let a = [
            CAP_CHOWN,
            garbage(&mut seed),
            garbage(&mut seed),
            garbage(&mut seed),
        ];
        assert_eq!(
            coefficient(rules, &prctl(PR_CAPBSET_READ, a)),
            base,
            "{a:x?}"
        );
    }
    // The capability probed still names the point.
    let other = coefficient(rules, &prctl(PR_CAPBSET_READ, [21, 0, 0, 0]));
    assert_ne!(other, base, "CAP_SYS_ADMIN is not CAP_CHOWN");
    // So does the option.
    assert_ne!(
        coefficient(rules, &prctl(24, [CAP_CHOWN, 0, 0, 0])),
        base,
        "PR_CAPBSET_DROP is not PR_CAPBSET_READ"
    );
}

#[test]
fn prctl_options_outside_the_table_keep_every_argument() {
    let rules = RuleSet::DEFAULT;
    // PR_SET_MM (35) and an option no kernel defines: nothing zeroed.
    for option in [35, 0x7777_0001] {
        let a = coefficient(rules, &prctl(option, [1, 2, 3, 4]));
        assert_ne!(a, coefficient(rules, &prctl(option, [1, 2, 3, 5])));
        assert_ne!(a, coefficient(rules, &prctl(option, [1, 2, 9, 4])));
        assert_ne!(a, coefficient(rules, &prctl(option, [7, 2, 3, 4])));
    }
    // PR_SET_NO_NEW_PRIVS (38): the kernel refuses arg3..arg5 non-zero, so they stay hashed.
    let nnp = coefficient(rules, &prctl(38, [1, 0, 0, 0]));
    assert_ne!(nnp, coefficient(rules, &prctl(38, [1, 0, 1, 0])));
    assert_ne!(nnp, coefficient(rules, &prctl(38, [2, 0, 0, 0])));
}

#[test]
fn without_the_rule_prctl_coefficients_are_tsems() {
    let e = prctl(
        PR_CAPBSET_READ,
        [CAP_CHOWN, 5, 0x7f00_dead_beef, 0x5555_1234],
    );
    let tsem = Mapper::new(HashAlg::Sha256, Mapping::Model0).coefficient(&e);
    for rules in [
        RuleSet::NONE,
        RuleSet {
            prctl_args: false,
            ..RuleSet::DEFAULT
        },
    ] {
        assert_eq!(coefficient(rules, &e), tsem, "{}", rules.names());
    }
    assert_ne!(coefficient(RuleSet::DEFAULT, &e), tsem);
    // The description itself is untouched without the rule.
    let mut n = Namer::new(RuleSet::NONE, HashAlg::Sha256, Mapping::Model0);
    let mut same = e.clone();
    n.apply(&mut same);
    assert_eq!(same.cell, e.cell);
}

/// Whichever task removes a created object (its creator cleaning up, or another task's
/// `rm -rf` of the tree first), the removal is one point: named as by its creator. Removing
/// something the namespace did not create keeps its remover.
#[test]
fn the_removal_of_a_created_object_is_named_as_by_its_creator() {
    let (maker, other) = (owner(8), owner(9));
    let unlink = |path: &str, by: Digest| {
        let mut e = ev(
            EventType::InodeUnlink,
            by,
            Cell::InodeDirEntry {
                dir: Inode::default(),
                dentry: dentry(path, None),
            },
        );
        e.header.p_task_id = owner(10);
        e
    };
    let mut create = ev(
        EventType::InodeCreate,
        maker,
        Cell::InodeCreate {
            dir: Inode::default(),
            dentry: dentry(
                "/w/tmp.r/lock",
                Some(Created {
                    owner: maker,
                    instance: 1,
                }),
            ),
            mode: 0o600,
        },
    );
    create.header.p_task_id = owner(11);
    let by = |remover: Digest| {
        run(&[
            mkdir("/w/tmp.r", maker, 1),
            create.clone(),
            unlink("/w/tmp.r/lock", remover),
        ])
    };
    let (own, raced) = (by(maker), by(other));
    assert_eq!(own[2].header.task_id, maker);
    assert_eq!(raced[2].header.task_id, maker);
    assert_eq!(raced[2].header.p_task_id, owner(11));
    assert_eq!(own[2], raced[2]);
    // Applied to its own output it changes nothing.
    assert_eq!(run(&raced), raced);
    // Not created by the namespace: the remover stays.
    let kept = run(&[unlink("/w/fixture", other)]);
    assert_eq!(kept[0].header.task_id, other);
    assert_eq!(kept[0].header.p_task_id, owner(10));
}

/// A bind to a Unix socket path creates the node that the next inode_mknod describes: the
/// address's last component is named by the binder, its directory like any other path, so a
/// socket at a random name in an existing directory or in a created one is one point; connects
/// to it after the node exists name it the same way.
#[test]
fn a_unix_socket_bound_at_a_random_name_is_named_by_its_binder() {
    use crate::event::Sock;
    let o = owner(12);
    let tok = alloc::format!("{CREATED_TOKEN}{}", o.to_hex());
    let sock = |ty: EventType, path: &str| {
        ev(
            ty,
            o,
            Cell::SockAddr {
                sock: Sock {
                    family: 1,
                    sock_type: 1,
                    protocol: 0,
                    owner: o,
                },
                addr: Some(SockAddr::Unix {
                    address: path.into(),
                }),
            },
        )
    };
    let mknod = |path: &str| {
        ev(
            EventType::InodeMknod,
            o,
            Cell::InodeMknod {
                dir: Inode::default(),
                dentry: dentry(path, None),
                mode: 0o140755,
                dev: (0, 0),
            },
        )
    };
    let addr = |e: &Event| match &e.cell {
        Cell::SockAddr {
            addr: Some(SockAddr::Unix { address }),
            ..
        } => address.clone(),
        _ => panic!(),
    };
    let at = |dir: &str, name: &str| {
        let p = alloc::format!("{dir}/{name}");
        run(&[
            mkdir("/tmp/tmp.rnd", o, 1),
            sock(EventType::SocketBind, &p),
            mknod(&p),
            sock(EventType::SocketConnect, &p),
        ])
    };
    // Where the root is a directory bound onto `/` (a chroot, CI's root), the node's dentry
    // path carries that directory and the address does not: the pair places the mount, so a
    // connect to the random name is named too.
    let bound_root = |name: &str| {
        let p = alloc::format!("/w/{name}");
        run(&[
            sock(EventType::SocketBind, &p),
            mknod(&alloc::format!("/var/root{p}")),
            sock(EventType::SocketConnect, &p),
        ])
    };
    let (x, y) = (bound_root("s.Ab12Cd"), bound_root("s.ZZ99zz"));
    assert_eq!(x, y);
    assert_eq!(addr(&x[2]), alloc::format!("/w/{tok}"));
    let (a, b) = (at("/w", "s.Ab12Cd"), at("/w", "s.ZZ99zz"));
    assert_eq!(a, b);
    assert_eq!(addr(&a[1]), alloc::format!("/w/{tok}"));
    assert_eq!(addr(&a[3]), alloc::format!("/w/{tok}"));
    let c = at("/tmp/tmp.rnd", "x.sock");
    assert_eq!(addr(&c[1]), alloc::format!("/tmp/{tok}/{tok}"));
    assert_eq!(addr(&c[3]), addr(&c[1]));
    assert_eq!(run(&c), c);
    // A relative address keeps its directory part and names its last component.
    let r = run(&[sock(EventType::SocketBind, "./s.q1")]);
    assert_eq!(addr(&r[0]), alloc::format!("./{tok}"));
    // A connect to a socket the run did not bind keeps its name.
    let k = run(&[sock(EventType::SocketConnect, "/run/dbus/socket")]);
    assert_eq!(addr(&k[0]), "/run/dbus/socket");
}
