//! Broker passwords at rest: sealed with AES-256-GCM under `SUPERVISOR_SECRET_KEY` when one is
//! set, so a copy of the database (a backup, a dump handed to support) does not hand over the
//! fleet's broker credentials. Stored as `enc:v1:{key id}:` and the base64 of nonce, ciphertext
//! and tag; the key id (the start of the key's SHA-256) says which key a value needs, so a
//! wrong key is named as such and `migrate --rotate-secret-key` can move every value to a new one.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use sea_orm::{IntoActiveModel, Set};

use crate::entity::mqtt_connection;

const PREFIX: &str = "enc:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("SUPERVISOR_SECRET_KEY must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error(
        "the stored password is encrypted but no SUPERVISOR_SECRET_KEY is set: start the \
         service with the key it was stored under"
    )]
    NoKey,
    #[error(
        "a stored password was sealed under key {stored}, but SUPERVISOR_SECRET_KEY is key \
         {configured}: start with the key it was stored under, or move the values to the new \
         key with `mqtt-supervisor migrate --rotate-secret-key`"
    )]
    WrongKey { stored: String, configured: String },
    #[error(
        "a stored password cannot be opened with SUPERVISOR_SECRET_KEY (its key id matches): the \
         value was edited or damaged; set the connection's password again"
    )]
    Damaged,
    #[error("cannot make a random nonce")]
    Random,
}

/// Seals and opens stored secrets; without a key it passes them through unchanged.
#[derive(Clone, Default)]
pub struct Secrets {
    key: Option<Arc<Key>>,
}

struct Key {
    /// Hex of the first four bytes of the key's SHA-256: names the key, reveals nothing of it.
    id: String,
    cipher: LessSafeKey,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Secrets {
    /// From the configured key: empty for none, else the base64 of 32 bytes.
    pub fn from_base64(key: &str) -> Result<Secrets, SecretError> {
        let key = key.trim();
        if key.is_empty() {
            return Ok(Secrets::default());
        }
        let bytes = BASE64.decode(key).map_err(|_| SecretError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SecretError::BadKey)?;
        let id = digest(&SHA256, &bytes).as_ref()[..4]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(Secrets {
            key: Some(Arc::new(Key {
                id,
                cipher: LessSafeKey::new(unbound),
            })),
        })
    }

    /// The configured key's id, if there is a key.
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(|key| key.id.as_str())
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// What to store for `plain`: sealed when there is a key, as it is otherwise.
    pub fn seal(&self, plain: &str) -> Result<String, SecretError> {
        let Some(key) = &self.key else {
            return Ok(plain.to_string());
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let mut sealed = plain.as_bytes().to_vec();
        key.cipher
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| SecretError::Random)?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, BASE64.encode(stored)))
    }

    /// The secret behind a stored value (a value stored before a key was set passes as it is).
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let key = self.key.as_ref().ok_or(SecretError::NoKey)?;
        let (id, encoded) = encoded.split_once(':').ok_or(SecretError::Damaged)?;
        if id != key.id {
            return Err(SecretError::WrongKey {
                stored: id.to_string(),
                configured: key.id.clone(),
            });
        }
        let bytes = BASE64.decode(encoded).map_err(|_| SecretError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Damaged);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Damaged)?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .cipher
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| SecretError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Damaged)
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// Every sealed password opens with this key: a missing or wrong key is found at start (exit 2
/// naming the variable), not at each connection's first attempt. Returns how many are stored in
/// the clear.
pub async fn check_stored_passwords(
    db: &DatabaseConnection,
    secrets: &Secrets,
) -> Result<usize, SealError> {
    let rows = mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::Password.is_not_null())
        .all(db)
        .await?;
    let mut plain = 0;
    for password in rows.into_iter().filter_map(|row| row.password) {
        if is_sealed(&password) {
            secrets.open(&password)?;
        } else {
            plain += 1;
        }
    }
    Ok(plain)
}

/// Opens every stored password with `old` and seals it with `new`: at start with the same key
/// on both sides (values stored before the key was set get sealed), and for `migrate
/// --rotate-secret-key`. One short update per row, so a run cut short leaves values under either
/// key (or in the clear), and running it again with the same pair finishes it. Returns how many
/// moved.
pub async fn reseal_stored_passwords(
    db: &DatabaseConnection,
    old: &Secrets,
    new: &Secrets,
) -> Result<usize, SealError> {
    let rows = mqtt_connection::Entity::find()
        .filter(mqtt_connection::Column::Password.is_not_null())
        .all(db)
        .await?;
    let mut moved = 0;
    for row in rows {
        let Some(stored) = row.password.clone() else {
            continue;
        };
        // Already under the new key: a rotation run again after a cut.
        if is_sealed(&stored) && new.open(&stored).is_ok() {
            continue;
        }
        let plain = old.open(&stored)?;
        let mut update = row.into_active_model();
        update.password = Set(Some(new.seal(&plain)?));
        update.update(db).await?;
        moved += 1;
    }
    Ok(moved)
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read or seal the stored passwords: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl SealError {
    /// A problem of the configured key (missing or wrong), which the operator must fix.
    pub fn is_key_problem(&self) -> bool {
        matches!(
            self,
            SealError::Secret(
                SecretError::NoKey | SecretError::WrongKey { .. } | SecretError::Damaged
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn a_sealed_password_opens_with_its_key_only() {
        let secrets = Secrets::from_base64(KEY).expect("key");
        let stored = secrets.seal("hunter2").expect("seal");
        assert!(is_sealed(&stored));
        assert!(!stored.contains("hunter2"));
        assert_ne!(
            stored,
            secrets.seal("hunter2").expect("seal"),
            "a fresh nonce each time"
        );
        assert_eq!(secrets.open(&stored).expect("open"), "hunter2");
        let other = Secrets::from_base64(OTHER_KEY).expect("key");
        match other.open(&stored) {
            Err(SecretError::WrongKey { stored, configured }) => {
                assert_eq!(Some(stored.as_str()), secrets.key_id());
                assert_eq!(Some(configured.as_str()), other.key_id());
            }
            wrong => panic!("expected the wrong key to be named, got {wrong:?}"),
        }
        assert!(matches!(
            Secrets::default().open(&stored),
            Err(SecretError::NoKey)
        ));
        let mut edited = stored.clone();
        edited.pop();
        edited.push('A');
        assert!(secrets.open(&edited).is_err());
    }

    #[test]
    fn without_a_key_values_pass_through_and_plain_ones_always_open() {
        let none = Secrets::default();
        assert_eq!(none.seal("plain").expect("seal"), "plain");
        let secrets = Secrets::from_base64(KEY).expect("key");
        assert_eq!(
            secrets.open("stored-before-the-key").expect("open"),
            "stored-before-the-key"
        );
    }

    #[test]
    fn a_key_that_is_not_32_bytes_of_base64_is_refused() {
        assert!(matches!(
            Secrets::from_base64("c2hvcnQ="),
            Err(SecretError::BadKey)
        ));
        assert!(matches!(
            Secrets::from_base64("not base64!"),
            Err(SecretError::BadKey)
        ));
        assert!(!Secrets::from_base64("").expect("none").has_key());
    }
}
