use super::*;
use crate::event::{EventHeader, FileDesc, Inode, PathRef};
use crate::raw::RawStr;
use alloc::vec;

fn file_open(coe: Coe) -> Event {
    let alg = HashAlg::Sha256;
    Event {
        header: EventHeader::new(
            "cat",
            EventType::FileOpen,
            alg.digest(b"task"),
            alg.digest(b"parent"),
        ),
        coe,
        cell: Cell::File(FileDesc {
            flags: 0x8000,
            inode: Inode {
                uid: 1,
                gid: 2,
                mode: 0o100644,
                s_magic: TMPFS_MAGIC,
                s_id: RawStr::from("tmpfs"),
                s_uuid: [0xaa; 16],
            },
            path: PathRef {
                dev: Some((0, 27)),
                created: None,
                path_type: Some(RawStr::from("root")),
                pathname: RawStr::from("/tmp/x"),
            },
            digest: alg.zero_digest(),
        }),
    }
}

#[test]
fn model0_file_open_layout_is_appendix_a() {
    let coe = Coe {
        uid: 5,
        fsuid: 7,
        fsgid: 8,
        capeff: 0x1f,
        ..Coe::default()
    };
    let ev = file_open(coe);
    let mut pre = Preimages::default();
    let c = Mapper::new(HashAlg::Sha256, Mapping::Model0).coefficient_traced(&ev, &mut pre);
    // COE: eight le32 ids then le64 capeff.
    let mut coe_bytes = vec![];
    for v in [5u32, 0, 0, 0, 0, 0, 7, 8] {
        coe_bytes.extend_from_slice(&v.to_le_bytes());
    }
    coe_bytes.extend_from_slice(&0x1fu64.to_le_bytes());
    assert_eq!(pre.coe, coe_bytes);
    // CELL: flags, INODE (tmpfs UUID levelled), dev, STR(type), STR(pathname), digest.
    let mut cell = vec![];
    cell.extend_from_slice(&0x8000u32.to_le_bytes());
    for v in [1u32, 2, 0o100644, TMPFS_MAGIC] {
        cell.extend_from_slice(&v.to_le_bytes());
    }
    let mut s_id = [0u8; 32];
    s_id[..5].copy_from_slice(b"tmpfs");
    cell.extend_from_slice(&s_id);
    cell.extend_from_slice(&[0u8; 16]);
    cell.extend_from_slice(&0u32.to_le_bytes());
    cell.extend_from_slice(&27u32.to_le_bytes());
    cell.extend_from_slice(&4u32.to_le_bytes());
    cell.extend_from_slice(b"root");
    cell.extend_from_slice(&6u32.to_le_bytes());
    cell.extend_from_slice(b"/tmp/x");
    cell.extend_from_slice(HashAlg::Sha256.zero_digest().as_bytes());
    assert_eq!(pre.cell, cell);
    // Coefficient: raw name, PTASK_ID, TASK_ID, COE id, CELL id.
    let mut co = b"file_open".to_vec();
    co.extend_from_slice(HashAlg::Sha256.digest(b"parent").as_bytes());
    co.extend_from_slice(HashAlg::Sha256.digest(b"task").as_bytes());
    co.extend_from_slice(HashAlg::Sha256.digest(&coe_bytes).as_bytes());
    co.extend_from_slice(HashAlg::Sha256.digest(&cell).as_bytes());
    assert_eq!(pre.coefficient, co);
    assert_eq!(c, HashAlg::Sha256.digest(&co));

    // v3 differs only by the path type.
    let mut v3 = Preimages::default();
    Mapper::new(HashAlg::Sha256, Mapping::V3).coefficient_traced(&ev, &mut v3);
    assert_eq!(v3.cell.len(), cell.len() - 8);
    assert_eq!(v3.coe, pre.coe);
}

#[test]
fn quixote_compat_reproduces_the_userspace_tma_quirks() {
    let ev = file_open(Coe {
        fsuid: 7,
        fsgid: 8,
        ..Coe::default()
    });
    let mut q = Preimages::default();
    Mapper::new(HashAlg::Sha256, Mapping::QuixoteCompat).coefficient_traced(&ev, &mut q);
    // fsuid hashed twice.
    assert_eq!(&q.coe[28..32], &7u32.to_le_bytes());
    // No PTASK_ID: name + TASK_ID + COE id + CELL id.
    assert_eq!(q.coefficient.len(), 9 + 3 * 32);
    // u16 mode, no device numbers, STR(type).
    assert_eq!(&q.cell[12..14], &(0o100644u16).to_le_bytes());
    assert_eq!(q.cell.len(), 4 + 4 + 4 + 2 + 4 + 32 + 16 + 8 + 10 + 32);

    let kill = Event {
        cell: Cell::TaskKill {
            target: HashAlg::Sha256.digest(b"t"),
            sig: 15,
            cross_ns: 1,
        },
        header: EventHeader {
            event_type: EventType::TaskKill,
            ..ev.header.clone()
        },
        ..ev.clone()
    };
    let mut k = Preimages::default();
    Mapper::new(HashAlg::Sha256, Mapping::QuixoteCompat).coefficient_traced(&kill, &mut k);
    assert_eq!(
        &k.cell[..8],
        &[1, 0, 0, 0, 15, 0, 0, 0],
        "cross_ns, then sig"
    );
    Mapper::new(HashAlg::Sha256, Mapping::Model0).coefficient_traced(&kill, &mut k);
    assert_eq!(
        &k.cell[32..40],
        &[15, 0, 0, 0, 1, 0, 0, 0],
        "kernel: target, sig, cross_ns"
    );
}

#[test]
fn a_repeated_coe_keeps_its_id() {
    let a = Coe {
        uid: 1,
        ..Coe::default()
    };
    let b = Coe {
        capeff: 1,
        ..Coe::default()
    };
    for mapping in [Mapping::Model0, Mapping::QuixoteCompat] {
        let mut m = Mapper::new(HashAlg::Sha256, mapping);
        for c in [a, a, b, b, a, b] {
            let mut bytes = vec![];
            encode_coe(mapping, &c, &mut bytes);
            assert_eq!(m.coe_id(&c), HashAlg::Sha256.digest(&bytes));
        }
    }
}

#[test]
fn task_id_and_pseudonym() {
    let ev = file_open(Coe::default());
    let Cell::File(exe) = &ev.cell else { return };
    let mut m = Mapper::new(HashAlg::Sha256, Mapping::Model0);
    let parent = HashAlg::Sha256.digest(b"parent");
    let coe_id = m.coe_id(&ev.coe);
    let cell_id = m.cell_id(&ev);
    let mut pre = b"bprm_committed_creds".to_vec();
    pre.extend_from_slice(parent.as_bytes());
    pre.extend_from_slice(&[0u8; 32]);
    pre.extend_from_slice(coe_id.as_bytes());
    pre.extend_from_slice(cell_id.as_bytes());
    assert_eq!(
        m.task_id(&parent, &ev.coe, exe),
        HashAlg::Sha256.digest(&pre)
    );
    let mut p = 6u32.to_le_bytes().to_vec();
    p.extend_from_slice(b"/tmp/x");
    assert_eq!(m.pseudonym("/tmp/x"), HashAlg::Sha256.digest(&p));
}

/// The coefficient from the traced preimages, each hashed by the `sha2` crate itself: no cache,
/// no shortcut of ours.
fn reference_coefficient(mapping: Mapping, ev: &Event) -> (Digest, Digest) {
    use sha2::Digest as _;
    let h = |b: &[u8]| Digest::from_slice(&sha2::Sha256::digest(b)).unwrap();
    let mut pre = Preimages::default();
    let traced = Mapper::new(HashAlg::Sha256, mapping).coefficient_traced(&ev.clone(), &mut pre);
    let cell = h(&pre.cell);
    let mut coefficient = vec![];
    encode_coefficient(mapping, ev, &h(&pre.coe), &cell, &mut coefficient);
    assert_eq!(coefficient, pre.coefficient);
    assert_eq!(traced, h(&coefficient));
    (cell, h(&coefficient))
}

#[test]
fn cached_first_blocks_never_give_another_preimage_its_digest() {
    // Events that share the CELL's and the coefficient's first 64 bytes and differ after them,
    // and events that differ in one byte of those first 64 (the inode's mode, uid, gid, s_id, a
    // UUID byte; the task id; the COE): every CELL id and coefficient of one long-lived mapper,
    // in an order that revisits and evicts entries, equals SHA-256 of the preimage computed
    // without the cache.
    let base = file_open(Coe::default());
    let mut variants = vec![];
    for i in 0..24u32 {
        let mut ev = base.clone();
        let Cell::File(f) = &mut ev.cell else { return };
        match i % 8 {
            0 => f.inode.mode ^= 1 << (i % 16),
            1 => f.inode.uid = i,
            2 => f.inode.gid = i,
            3 => f.inode.s_uuid[(i % 16) as usize] ^= 0x40,
            4 => f.inode.s_id = RawStr::from(alloc::format!("tmpf{i}").as_str()),
            5 => f.path.pathname = RawStr::from(alloc::format!("/tmp/x{i}").as_str()),
            6 => ev.header.task_id = HashAlg::Sha256.digest(&i.to_le_bytes()),
            _ => ev.coe.capeff = u64::from(i),
        }
        // Not tmpfs too, so that the UUID is hashed.
        if i % 3 == 0 {
            f.inode.s_magic = 0xef53;
        }
        variants.push(ev);
    }
    for mapping in [Mapping::Model0, Mapping::V3, Mapping::QuixoteCompat] {
        let want: Vec<_> = variants
            .iter()
            .map(|ev| reference_coefficient(mapping, ev))
            .collect();
        let mut m = Mapper::new(HashAlg::Sha256, mapping);
        for round in 0..3 {
            for k in 0..variants.len() {
                let j = (k * 7 + round) % variants.len();
                let ev = &variants[j];
                assert_eq!(m.cell_id(ev), want[j].0, "{mapping:?} cell {j}");
                assert_eq!(m.coefficient(ev), want[j].1, "{mapping:?} coefficient {j}");
            }
        }
        let (cell, coefficient) = m.block_counts();
        assert!(cell.reused > 0 && coefficient.reused > 0, "{mapping:?}");
    }
}
