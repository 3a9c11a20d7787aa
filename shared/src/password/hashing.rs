//! Argon2id hashing with bounded memory and bounded concurrency.
//!
//! Each check fills 19 MiB (OWASP's argon2id minimum: m = 19,456 KiB, t = 2, p = 1, the argon2 crate's
//! defaults). Letting every request allocate its own buffer is what took the API to 1.9 GiB under 100 parallel
//! logins (issue 9): nothing bounded how many ran at once, and the allocator kept the freed buffers. Here a
//! fixed set of buffers is allocated once and reused, one per running check, so memory is at most
//! `buffers × 19 MiB` however many requests arrive; the rest wait in a short queue or are turned away at once.

use argon2::password_hash::{Output, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The largest memory cost a stored hash may ask for; larger ones are refused rather than allocated.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Why a hash could not be computed now.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Every slot is busy and the queue is full or the wait ran out: answer 503 with `Retry-After`.
    #[error("password checks are busy")]
    Busy,
    #[error("hashing a password failed: {0}")]
    Failed(String),
}

/// Which queue a check waits in. `Trusted` checks (a sign-in from an address the account signed in from
/// before) get a slot of their own, so a flood of anonymous attempts cannot keep the owner out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Anyone,
    Trusted,
}

/// The bounded hashing service. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHashing {
    inner: Arc<Inner>,
}

struct Inner {
    anyone: Semaphore,
    trusted: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    queue_wait: Duration,
    buffers: Mutex<Vec<Vec<Block>>>,
}

impl PasswordHashing {
    /// `slots` checks run at once (one per core is right: each is pure CPU), plus one for trusted sign-ins;
    /// up to `max_waiting` more wait at most `queue_wait` for a slot.
    pub fn new(slots: usize, max_waiting: usize, queue_wait: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                anyone: Semaphore::new(slots.max(1)),
                trusted: Semaphore::new(1),
                waiting: AtomicUsize::new(0),
                max_waiting,
                queue_wait,
                buffers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sized to this machine: one slot per core, a queue of 16 per slot, waits of up to 2 s.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::new(cores, 16 * cores, Duration::from_secs(2))
    }

    /// True when `password` is the one `stored_hash` was made from; false for any other and for a malformed hash.
    pub async fn verify(&self, lane: Lane, password: String, stored_hash: String) -> Result<bool, HashingError> {
        self.run(lane, move |memory| Ok(verify_with(memory, &password, &stored_hash))).await
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for a new password.
    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        self.run(Lane::Anyone, move |memory| hash_with(memory, &password)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let inner = &self.inner;
        let semaphore = match lane {
            Lane::Trusted if inner.trusted.available_permits() > 0 => &inner.trusted,
            _ => &inner.anyone,
        };
        let permit = match semaphore.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if inner.waiting.fetch_add(1, Ordering::SeqCst) >= inner.max_waiting {
                    inner.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(HashingError::Busy);
                }
                let waited = tokio::time::timeout(inner.queue_wait, semaphore.acquire()).await;
                inner.waiting.fetch_sub(1, Ordering::SeqCst);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(HashingError::Busy),
                }
            }
        };
        let mut memory =
            inner.buffers.lock().map_err(|_| HashingError::Failed("poisoned".into()))?.pop().unwrap_or_default();
        let (result, memory) = tokio::task::spawn_blocking(move || {
            let result = work(&mut memory);
            (result, memory)
        })
        .await
        .map_err(|error| HashingError::Failed(error.to_string()))?;
        if let Ok(mut buffers) = inner.buffers.lock() {
            buffers.push(memory);
        }
        drop(permit);
        result
    }
}

/// Grows `memory` to `params`' size once; later checks with the same parameters reuse it.
fn blocks_for<'m>(memory: &'m mut Vec<Block>, params: &Params) -> &'m mut [Block] {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    &mut memory[..params.block_count()]
}

pub(super) fn hash_with(memory: &mut Vec<Block>, password: &str) -> Result<String, HashingError> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|error| HashingError::Failed(error.to_string()))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks_for(memory, &params))
        .map_err(|error| HashingError::Failed(error.to_string()))?;
    let output = Output::new(&out).map_err(|error| HashingError::Failed(error.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${output}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str()
    ))
}

pub(super) fn verify_with(memory: &mut Vec<Block>, password: &str, stored_hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored_hash) else { return false };
    let (Ok(algorithm), Some(expected), Some(salt)) = (Algorithm::try_from(parsed.algorithm), parsed.hash, parsed.salt)
    else {
        return false;
    };
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let (Ok(version), Ok(params)) = (version, Params::try_from(&parsed)) else { return false };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
        password.as_bytes(),
        salt_bytes,
        &mut out,
        blocks_for(memory, &params),
    );
    // Output's equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_through_the_pool_and_match_the_crates_own_format() {
        let hashing = PasswordHashing::new(1, 4, Duration::from_secs(5));
        let stored = hashing.hash("correct horse battery".into()).await.expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(hashing.verify(Lane::Anyone, "correct horse battery".into(), stored.clone()).await.expect("verify"));
        assert!(!hashing.verify(Lane::Trusted, "wrong horse battery".into(), stored.clone()).await.expect("verify"));
        // A hash the argon2 crate made its usual way (users created before this pool) verifies here, and ours there.
        use argon2::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let usual = Argon2::default().hash_password(b"another password", &salt).expect("hash").to_string();
        assert!(hashing.verify(Lane::Anyone, "another password".into(), usual).await.expect("verify"));
        use argon2::PasswordVerifier;
        let ours = PasswordHash::new(&stored).expect("a PHC string");
        assert!(Argon2::default().verify_password(b"correct horse battery", &ours).is_ok());
        assert!(!hashing.verify(Lane::Anyone, "x".into(), "not a hash".into()).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once_and_the_trusted_lane_still_runs() {
        let hashing = PasswordHashing::new(1, 1, Duration::from_secs(30));
        let stored = super::super::hash("pw").expect("hash");
        let blocked = hashing.inner.anyone.acquire().await.expect("permit");
        let waiter = {
            let hashing = hashing.clone();
            let stored = stored.clone();
            tokio::spawn(async move { hashing.verify(Lane::Anyone, "pw".into(), stored).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let refused = hashing.verify(Lane::Anyone, "pw".into(), stored.clone()).await;
        assert!(matches!(refused, Err(HashingError::Busy)), "{refused:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(hashing.verify(Lane::Trusted, "pw".into(), stored).await.expect("trusted lane"));
        drop(blocked);
        assert!(waiter.await.expect("join").expect("the waiter gets the slot"));
    }
}
