//! Refresh sessions in the credential database: one table of their own,
//! digests only, rotation as a conditional `UPDATE`.

use std::time::SystemTime;

use sqlx::{AnyPool, Row as _};

use crate::clock::{from_unix_millis, unix_millis};
use crate::sql::SqlStoreError;
use crate::store::{RefreshDigest, RefreshRecord, RefreshSessionStore};

/// The table: a name of its own, made at connect beside the users'.
pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS wsgate_refresh_sessions (
    family TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    jkt TEXT,
    certificate TEXT,
    current_digest TEXT NOT NULL,
    previous_digest TEXT,
    rotated_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended BIGINT NOT NULL DEFAULT 0
)";

/// A [`RefreshSessionStore`] in SQLite or PostgreSQL: the credential
/// database's pool ([`SqlCredentialStore::refresh_sessions`](crate::sql::SqlCredentialStore::refresh_sessions)),
/// so sessions survive a restart. Tokens are kept as SHA-256 digests (hex);
/// a rotation is `UPDATE … WHERE family = ? AND current_digest = ? AND
/// ended = 0`, so two uses of one token cannot both rotate it. Expired
/// sessions are deleted as new ones start. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlRefreshSessionStore {
    pub(super) pool: AnyPool,
}

fn millis(time: SystemTime) -> i64 {
    i64::try_from(unix_millis(time)).unwrap_or(i64::MAX)
}

fn time(millis: i64) -> SystemTime {
    from_unix_millis(u64::try_from(millis).unwrap_or(0))
}

fn record_of(row: &sqlx::any::AnyRow) -> Result<RefreshRecord, sqlx::Error> {
    let corrupt = || sqlx::Error::Decode("refresh session digest".into());
    let previous: Option<String> = row.try_get("previous_digest")?;
    Ok(RefreshRecord {
        family: row.try_get("family")?,
        session_id: row.try_get("session_id")?,
        subject: row.try_get("subject")?,
        jkt: row.try_get("jkt")?,
        certificate: row.try_get("certificate")?,
        current: RefreshDigest::from_hex(&row.try_get::<String, _>("current_digest")?)
            .ok_or_else(corrupt)?,
        previous: match previous {
            Some(previous) => Some(RefreshDigest::from_hex(&previous).ok_or_else(corrupt)?),
            None => None,
        },
        rotated_at: time(row.try_get("rotated_at")?),
        created_at: time(row.try_get("created_at")?),
        expires_at: time(row.try_get("expires_at")?),
        ended: row.try_get::<i64, _>("ended")? != 0,
    })
}

impl RefreshSessionStore for SqlRefreshSessionStore {
    type Error = SqlStoreError;

    async fn insert(&self, record: RefreshRecord) -> Result<(), SqlStoreError> {
        sqlx::query("DELETE FROM wsgate_refresh_sessions WHERE expires_at < $1")
            .bind(millis(record.created_at))
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO wsgate_refresh_sessions (family, session_id, subject, jkt, certificate, \
             current_digest, previous_digest, rotated_at, created_at, expires_at, ended) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(record.family)
        .bind(record.session_id)
        .bind(record.subject)
        .bind(record.jkt)
        .bind(record.certificate)
        .bind(RefreshDigest::to_hex(&record.current))
        .bind(record.previous.as_ref().map(RefreshDigest::to_hex))
        .bind(millis(record.rotated_at))
        .bind(millis(record.created_at))
        .bind(millis(record.expires_at))
        .bind(i64::from(record.ended))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, family: &str) -> Result<Option<RefreshRecord>, SqlStoreError> {
        let row = sqlx::query(
            "SELECT family, session_id, subject, jkt, certificate, current_digest, \
             previous_digest, rotated_at, created_at, expires_at, ended \
             FROM wsgate_refresh_sessions WHERE family = $1",
        )
        .bind(family)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(record_of).transpose()?)
    }

    async fn replace(
        &self,
        expected: RefreshDigest,
        record: RefreshRecord,
    ) -> Result<bool, SqlStoreError> {
        let done = sqlx::query(
            "UPDATE wsgate_refresh_sessions SET current_digest = $3, previous_digest = $4, \
             rotated_at = $5, expires_at = $6, ended = $7 \
             WHERE family = $1 AND current_digest = $2 AND ended = 0",
        )
        .bind(record.family)
        .bind(RefreshDigest::to_hex(&expected))
        .bind(RefreshDigest::to_hex(&record.current))
        .bind(record.previous.as_ref().map(RefreshDigest::to_hex))
        .bind(millis(record.rotated_at))
        .bind(millis(record.expires_at))
        .bind(i64::from(record.ended))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
