//! Bearer tokens: creating them (shown once, only their SHA-256 stored),
//! and checking the `Authorization` header of a request against every
//! stored hash in constant time, so neither the token nor how much of it
//! matched leaks through timing. The server reads the tokens again whenever
//! one was created or revoked (one small read per request tells), so
//! `calsaga token create|revoke` beside a running server count from its next
//! request. It notes when each token was last used and writes that in
//! batches, off the request path. A token is never logged: logs name it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::Clock;
use crate::store::{Store, StoreError, TokenRow, WriteOp};

/// How late `token list` may show a token's last use.
const USES_FLUSH_EVERY: Duration = Duration::from_secs(60);

/// Every token starts with this, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "cs_";
const TOKEN_RANDOM_BYTES: usize = 32;
const NAME_CHARS_MAX: usize = 64;
/// The name of the token `serve` creates when there is none.
pub const FIRST_ADMIN_NAME: &str = "admin";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Services, availability, bookings and holds.
    Booking,
    /// Everything, including workflows.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Booking => "booking",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Scope, AuthError> {
        match s {
            "booking" => Ok(Scope::Booking),
            "admin" => Ok(Scope::Admin),
            other => Err(AuthError::Scope(other.to_string())),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (safe to log; the token never is).
    pub name: String,
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "scope {0:?} is not known; use booking (bookings, holds, availability) or admin (everything)"
    )]
    Scope(String),
    #[error("token name {0:?} is not allowed; use 1 to 64 letters, digits, '.', '_' or '-'")]
    Name(String),
    #[error(
        "stored token {name:?} is unreadable ({detail}); create a new token and restore the database if more are"
    )]
    Stored { name: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a request was not authenticated; logged, never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    NotBearer,
    Unknown,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "no Authorization header",
            Refusal::NotBearer => "Authorization is not a Bearer token",
            Refusal::Unknown => "unknown token",
        }
    }
}

struct Known {
    name: String,
    scope: Scope,
    sha256: [u8; 32],
}

/// The tokens the server accepts, and when each was last used.
pub struct Auth {
    store: Store,
    known: RwLock<Loaded>,
    /// Uses not yet written, by token name.
    uses: Mutex<HashMap<String, DateTime<Utc>>>,
    clock: Arc<dyn Clock>,
}

/// A token set and the `Store::token_changes` count it was read at.
struct Loaded {
    changes: i64,
    tokens: Arc<Vec<Known>>,
}

impl Auth {
    pub fn load(store: &Store, clock: Arc<dyn Clock>) -> Result<Arc<Auth>, AuthError> {
        Ok(Arc::new(Auth {
            store: store.clone(),
            known: RwLock::new(load(store)?),
            uses: Mutex::new(HashMap::new()),
            clock,
        }))
    }

    /// The current token set: read again when a token was created or
    /// revoked since (one small read), else the one in memory. If the read
    /// fails, the set loaded before still counts.
    fn tokens(&self) -> Arc<Vec<Known>> {
        let (changes, tokens) = {
            let loaded = self.known.read().unwrap_or_else(|e| e.into_inner());
            (loaded.changes, Arc::clone(&loaded.tokens))
        };
        match self.store.token_changes() {
            Ok(now) if now == changes => tokens,
            Ok(_) => match load(&self.store) {
                Ok(fresh) => {
                    let tokens = Arc::clone(&fresh.tokens);
                    *self.known.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                    tokens
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not reload the API tokens; the ones loaded before still count");
                    tokens
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not check the API tokens for changes; the ones loaded before still count");
                tokens
            }
        }
    }

    /// Writes the uses noted since the last call, in one commit.
    pub async fn flush_uses(&self) -> Result<(), StoreError> {
        let uses: Vec<(String, DateTime<Utc>)> =
            std::mem::take(&mut *self.uses.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        if uses.is_empty() {
            return Ok(());
        }
        self.store.commit(vec![WriteOp::TouchTokens(uses)]).await
    }

    /// Writes the uses every `USES_FLUSH_EVERY` until `stopped`, then the
    /// last ones.
    pub async fn record_uses(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut flush = tokio::time::interval(USES_FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = flush.tick() => self.flush_logged().await,
                _ = stopped.changed() => break,
            }
        }
        self.flush_logged().await;
    }

    async fn flush_logged(&self) {
        if let Err(e) = self.flush_uses().await {
            tracing::warn!(error = %e, "could not record when API tokens were last used");
        }
    }

    /// The caller of a request with this `Authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Refusal> {
        let header = header.ok_or(Refusal::Missing)?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Refusal::NotBearer)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let tokens = self.tokens();
        // Compare with every token, without stopping at a match.
        let mut found = None;
        for known in tokens.iter() {
            if constant_time_eq(&presented, &known.sha256) {
                found = Some(known);
            }
        }
        let found = found.ok_or(Refusal::Unknown)?;
        self.uses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(found.name.clone(), self.clock.now());
        Ok(Principal {
            name: found.name.clone(),
            scope: found.scope,
        })
    }
}

/// The changes count first: a change racing the read is seen next time.
fn load(store: &Store) -> Result<Loaded, AuthError> {
    let changes = store.token_changes()?;
    let tokens = store
        .tokens()?
        .into_iter()
        .map(|row| {
            let stored = |detail: String| AuthError::Stored {
                name: row.name.clone(),
                detail,
            };
            let sha256 = hex::decode(&row.token_sha256)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| stored("its hash is not 32 bytes of hex".into()))?;
            let scope = row
                .scope
                .parse()
                .map_err(|e: AuthError| stored(e.to_string()))?;
            Ok(Known {
                name: row.name,
                scope,
                sha256,
            })
        })
        .collect::<Result<_, AuthError>>()?;
    Ok(Loaded {
        changes,
        tokens: Arc::new(tokens),
    })
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Creates a token, stores its hash and returns the token (shown once).
pub fn create_token(
    store: &Store,
    name: &str,
    scope: Scope,
    now: DateTime<Utc>,
) -> Result<String, AuthError> {
    let (token, row) = new_token(name, scope, now)?;
    store.commit_blocking(vec![WriteOp::PutToken(row)])?;
    Ok(token)
}

/// A new random token and the row that stores its hash, for the caller to
/// commit (`calsaga token create` does so beside a running server).
pub fn new_token(
    name: &str,
    scope: Scope,
    now: DateTime<Utc>,
) -> Result<(String, TokenRow), AuthError> {
    let name_ok = (1..=NAME_CHARS_MAX).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !name_ok {
        return Err(AuthError::Name(name.to_string()));
    }
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(random));
    let row = TokenRow {
        id: Uuid::new_v4(),
        name: name.to_string(),
        scope: scope.as_str().to_string(),
        token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
        created_at: now,
        last_used_at: None,
    };
    Ok((token, row))
}

/// With no token stored yet, creates an admin token and returns it.
pub fn first_admin_token(store: &Store, now: DateTime<Utc>) -> Result<Option<String>, AuthError> {
    if !store.tokens()?.is_empty() {
        return Ok(None);
    }
    create_token(store, FIRST_ADMIN_NAME, Scope::Admin, now).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::store::StoreConfig;

    fn clock() -> Arc<dyn Clock> {
        Arc::new(SimClock::new("2030-03-04T09:00:00Z".parse().unwrap()))
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db"), StoreConfig::default()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_created_token_authenticates_with_its_scope_and_only_its_hash_is_stored() {
        let (_dir, store) = store();
        let now = Utc::now();
        let admin = first_admin_token(&store, now).unwrap().unwrap();
        assert_eq!(
            first_admin_token(&store, now).unwrap(),
            None,
            "only when there is none"
        );
        let booking = create_token(&store, "web", Scope::Booking, now).unwrap();
        assert!(admin.starts_with(TOKEN_PREFIX) && admin != booking);
        let rows = store.tokens().unwrap();
        assert!(
            rows.iter()
                .all(|r| r.token_sha256.len() == 64 && !r.token_sha256.contains(&admin[3..]))
        );
        let auth = Auth::load(&store, clock()).unwrap();
        let who = auth
            .authenticate(Some(&format!("Bearer {booking}")))
            .unwrap();
        assert_eq!((who.name.as_str(), who.scope), ("web", Scope::Booking));
        assert_eq!(
            auth.authenticate(Some(&format!("bearer {admin}")))
                .unwrap()
                .scope,
            Scope::Admin
        );
        assert_eq!(auth.authenticate(None), Err(Refusal::Missing));
        assert_eq!(
            auth.authenticate(Some(&format!("Basic {admin}"))),
            Err(Refusal::NotBearer)
        );
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {admin}x"))),
            Err(Refusal::Unknown)
        );
    }

    #[tokio::test]
    async fn a_token_created_or_revoked_after_loading_counts_from_the_next_request_and_uses_are_recorded()
     {
        let (_dir, store) = store();
        let clock = clock();
        let ops = create_token(&store, "ops", Scope::Admin, clock.now()).unwrap();
        let auth = Auth::load(&store, clock.clone()).unwrap();
        let web = create_token(&store, "web", Scope::Booking, clock.now()).unwrap();
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(
            auth.authenticate(Some(&bearer(&web))).map(|p| p.name),
            Ok("web".to_string())
        );
        store
            .commit_blocking(vec![WriteOp::RevokeToken { name: "web".into() }])
            .unwrap();
        assert_eq!(
            auth.authenticate(Some(&bearer(&web))),
            Err(Refusal::Unknown)
        );
        assert!(auth.authenticate(Some(&bearer(&ops))).is_ok());
        let used_at = clock.now();
        auth.flush_uses().await.unwrap();
        let rows = store.tokens().unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.name.as_str(), r.last_used_at))
                .collect::<Vec<_>>(),
            [("ops", Some(used_at))],
            "the revoked token's use went with it"
        );
    }

    #[test]
    fn names_and_scopes_are_checked_and_names_are_unique() {
        let (_dir, store) = store();
        let now = Utc::now();
        assert!(matches!(
            create_token(&store, "a b", Scope::Admin, now),
            Err(AuthError::Name(_))
        ));
        assert!("root".parse::<Scope>().is_err());
        create_token(&store, "ops", Scope::Admin, now).unwrap();
        let again = create_token(&store, "ops", Scope::Admin, now).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
    }
}
