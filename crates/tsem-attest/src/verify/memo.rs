//! A memo of expected states. A periodic attester posts the same aggregate and usually the same
//! forensic points every time, so a verifier would otherwise hash the same chain over the model's
//! points for every post: about a quarter of the fleet verifier's CPU. The memo holds the state
//! [`ExpectedModel::state_with`] computed, keyed by everything that state depends on, so a hit
//! returns exactly what the computation would; it never holds an attested (claimed) state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tsem_core::hash::{Digest, HashAlg};

use super::ExpectedModel;

/// Everything [`ExpectedModel::state_with`] depends on: the model (its digest covers its points
/// and base lines; the hash function is the verifier's choice, so it is part of the key, and so
/// is the base, at no cost), the aggregate, and the forensic points in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    model: Digest,
    alg: HashAlg,
    base: Digest,
    aggregate: Digest,
    forensic: Vec<Digest>,
}

/// Forensic points at most in a memoised key: an entry then holds at most about 1.2 KB, so the
/// memo's memory is bounded by its entry count whatever `max_forensics` a policy allows. A state
/// with more forensic points is computed each time (as without the memo).
pub const MAX_MEMO_FORENSIC: usize = 16;

/// A bounded map of expected states, shared by the threads of a verifier process. When it is
/// full it is cleared: an attester's next post refills its entry, and a stream of distinct keys
/// (which only enrolled, signing attesters can produce: the signature is checked first) costs
/// what it would have cost without the memo, never more memory than the bound.
#[derive(Debug)]
pub struct StateMemo {
    map: Mutex<HashMap<Key, Digest>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl StateMemo {
    /// A memo holding at most `capacity` states (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// [`ExpectedModel::state_with`], from the memo when these exact inputs were computed before.
    pub fn state(&self, model: &ExpectedModel, aggregate: &Digest, forensic: &[Digest]) -> Digest {
        if forensic.len() > MAX_MEMO_FORENSIC {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return model.state_with(aggregate, forensic);
        }
        let key = Key {
            model: model.digest,
            alg: model.alg,
            base: model.base,
            aggregate: *aggregate,
            forensic: forensic.to_vec(),
        };
        // A poisoned lock only means another thread panicked while holding it; the map holds
        // no partial entries (one insert per critical section), but computing is always safe.
        if let Some(s) = self.map.lock().ok().and_then(|m| m.get(&key).copied()) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return s;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let s = model.state_with(aggregate, forensic);
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert(key, s);
        }
        s
    }

    /// States held now.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from the memo since it was made.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that computed the state since it was made (stored or, past
    /// [`MAX_MEMO_FORENSIC`] forensic points, not).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

impl Default for StateMemo {
    /// 4 096 states: a fleet's workloads times their models times the forensic sets they post,
    /// at most about 1.2 KB each ([`MAX_MEMO_FORENSIC`]), typically 200 bytes.
    fn default() -> Self {
        Self::new(4096)
    }
}
