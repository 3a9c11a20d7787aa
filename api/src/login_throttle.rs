//! Sign-in throttling in Redis, shared by every API replica. It slows an attacker without locking out the
//! account's owner (issue 9: five wrong passwords from anyone used to lock the real owner out for 15 minutes).
//!
//! - Per (email, client address): five attempts come at once; from the fifth on, each attempt opens a wait
//!   that doubles (1 s, 2 s, 4 s … up to 15 min) before the next is taken. The owner at another address is not
//!   slowed.
//! - Per email across addresses and per address across emails: past `MAX_FAILURES_PER_EMAIL` or
//!   `MAX_FAILURES_PER_ADDRESS` failures in the window, attempts are refused, except from an address the
//!   account has signed in from before (a "known" address, remembered for 90 days).
//!
//! An attempt is counted when it starts, before the password is hashed, so a hundred parallel attempts cannot
//! all slip under the limit; a success takes its own count back. Keys use the email as Postgres lower-cases it
//! (`users::LoginLookup::email_key`), the same folding the account lookup uses.

use crate::state::AppState;
use crm_shared::DomainError;
use std::sync::LazyLock;

pub const LOGIN_WINDOW_SECONDS: u64 = 15 * 60;
/// Attempts per (email, address) before waits begin.
pub const FREE_ATTEMPTS_PER_PAIR: u64 = 5;
pub const MAX_WAIT_SECONDS: u64 = 15 * 60;
pub const MAX_FAILURES_PER_EMAIL: u64 = 100;
pub const MAX_FAILURES_PER_ADDRESS: u64 = 50;
const KNOWN_ADDRESS_DAYS: u64 = 90;

/// Atomically: refuse while a wait runs or a wide limit is reached (known addresses pass the wide limits),
/// otherwise count the attempt everywhere and, past the free attempts, open the next wait.
static BEGIN_ATTEMPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local pair, wait, email, address, known = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local window, free, max_email, max_address, max_wait, client =
    tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local is_known = redis.call('SISMEMBER', known, client) == 1
local waiting = redis.call('PTTL', wait)
if waiting > 0 then return {'pair', waiting, is_known and 1 or 0} end
if not is_known then
    if tonumber(redis.call('GET', email) or '0') >= max_email then
        return {'email', redis.call('PTTL', email), 0}
    end
    if tonumber(redis.call('GET', address) or '0') >= max_address then
        return {'address', redis.call('PTTL', address), 0}
    end
end
local attempts = redis.call('INCR', pair)
redis.call('EXPIRE', pair, 86400, 'NX')
for _, key in ipairs({email, address}) do
    redis.call('INCR', key)
    redis.call('EXPIRE', key, window, 'NX')
end
if attempts >= free then
    local seconds = math.min(2 ^ (attempts - free), max_wait)
    redis.call('SET', wait, '1', 'PX', math.floor(seconds * 1000))
end
return {'ok', attempts, is_known and 1 or 0}
",
    )
});

/// Takes back the attempt of a sign-in that succeeded, ends the pair's waits and remembers the address.
static SUCCEEDED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local pair, wait, email, address, known = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
redis.call('DEL', pair, wait)
for _, key in ipairs({email, address}) do
    if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
redis.call('SADD', known, ARGV[1])
redis.call('EXPIRE', known, tonumber(ARGV[2]))
return 1
",
    )
});

/// One sign-in attempt, counted.
pub struct LoginAttempt {
    keys: [String; 5],
    address: String,
    /// The account signed in from this address before: its check takes the trusted hashing lane.
    pub known_address: bool,
}

impl LoginAttempt {
    fn keys(state: &AppState, email_key: &str, address: &str) -> [String; 5] {
        let prefix = format!("{}:login", state.settings.redis_prefix);
        // Emails may hold any character: hex keeps keys unambiguous.
        let email = hex(email_key);
        [
            format!("{prefix}:pair:{email}:{address}"),
            format!("{prefix}:wait:{email}:{address}"),
            format!("{prefix}:email:{email}"),
            format!("{prefix}:address:{address}"),
            format!("{prefix}:known:{email}"),
        ]
    }

    /// Counts an attempt, or answers 429 with `Retry-After` when this one must wait.
    pub async fn begin(state: &AppState, email_key: &str, address: &str) -> Result<LoginAttempt, DomainError> {
        let keys = Self::keys(state, email_key, address);
        let mut invocation = BEGIN_ATTEMPT.prepare_invoke();
        for key in &keys {
            invocation.key(key);
        }
        invocation
            .arg(LOGIN_WINDOW_SECONDS)
            .arg(FREE_ATTEMPTS_PER_PAIR)
            .arg(MAX_FAILURES_PER_EMAIL)
            .arg(MAX_FAILURES_PER_ADDRESS)
            .arg(MAX_WAIT_SECONDS)
            .arg(address);
        let (verdict, value, known): (String, i64, i64) = invocation.invoke_async(&mut state.redis.clone()).await?;
        let retry_after = u64::try_from(value).unwrap_or(1000).div_ceil(1000).max(1);
        let message = match verdict.as_str() {
            "ok" => return Ok(LoginAttempt { keys, address: address.to_owned(), known_address: known == 1 }),
            "pair" => format!("too many sign-in attempts for this email from your address; wait {retry_after} s"),
            "email" => format!(
                "too many failed sign-in attempts for this email; try again in {retry_after} s, or from a \
                 device that has signed in before"
            ),
            _ => format!("too many failed sign-in attempts from your address; try again in {retry_after} s"),
        };
        Err(DomainError::RateLimited(message, retry_after))
    }

    pub async fn succeeded(self, state: &AppState) -> Result<(), DomainError> {
        let mut invocation = SUCCEEDED.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        invocation.arg(&self.address).arg(KNOWN_ADDRESS_DAYS * 86_400);
        let _: i64 = invocation.invoke_async(&mut state.redis.clone()).await?;
        Ok(())
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}
