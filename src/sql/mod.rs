//! Credentials in a SQL database (features `sqlite`, `postgres`), with
//! sqlx: runtime queries only (no compile-time macros, nothing a
//! downstream build must prepare), one table of its own that installs
//! itself, times as Unix milliseconds.
//!
//! ```no_run
//! use wsgate::sql::SqlCredentialStore;
//!
//! # async fn run() -> Result<(), wsgate::Error> {
//! // SQLite (a file, created when missing), or `sqlite::memory:`, or
//! // `postgres://user:password@host/db`.
//! let store = SqlCredentialStore::connect("sqlite://accounts.db").await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! - **Schema**: `CREATE TABLE IF NOT EXISTS wsgate_users (…)` (and
//!   `wsgate_refresh_sessions`, [`SqlRefreshSessionStore`]) at connect:
//!   a name of its own, no migration table of its own, so it never
//!   collides with the application's migrations.
//! - **SQLite**: WAL journal and a 5 s busy timeout on every connection,
//!   so concurrent logins never see "database is locked".
//! - **Failures**: a database that is down answers with a backend error
//!   (the handshake's 503 with `Retry-After`), never a refusal; a
//!   connection is waited for at most 2 s.
//! - **Usernames** are bound parameters, never SQL text: `' OR '1'='1` is
//!   a username like any other.

use std::time::{Duration, SystemTime};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _, Row as _};

mod refresh;

pub use self::refresh::SqlRefreshSessionStore;

use crate::clock::unix_millis;
use crate::error::Error;
use crate::store::{AccountStore, CredentialStore, StoredUser};

/// The table: a name of its own.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS wsgate_users (
    username TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)";

/// A [`CredentialStore`] and [`AccountStore`] in SQLite or PostgreSQL.
/// Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct SqlCredentialStore {
    pool: AnyPool,
}

/// A failure of the database. Its text never holds a password or a hash.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct SqlStoreError(#[from] sqlx::Error);

impl SqlCredentialStore {
    /// Connects to `url` and installs the table when it is missing:
    /// `sqlite://PATH` (the file is created), `sqlite::memory:` (one
    /// database shared by the pool's connections, for tests), or
    /// `postgres://…`.
    ///
    /// # Errors
    ///
    /// A backend error when the database cannot be reached or the table
    /// cannot be made.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        sqlx::any::install_default_drivers();
        let (url, memory) = normalise(url);
        let options: AnyConnectOptions = url.parse().map_err(Error::backend)?;
        let sqlite = url.starts_with("sqlite:");
        let mut pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(2));
        if memory {
            // The shared in-memory database lives as long as a connection.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        connection.execute("PRAGMA busy_timeout = 5000").await?;
                        connection.execute("PRAGMA journal_mode = WAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(Error::backend)?;
        pool.execute(SCHEMA).await.map_err(Error::backend)?;
        pool.execute(refresh::SCHEMA)
            .await
            .map_err(Error::backend)?;
        Ok(Self { pool })
    }

    /// Refresh sessions in the same database (table
    /// `wsgate_refresh_sessions`, made at connect): they survive a restart.
    pub fn refresh_sessions(&self) -> SqlRefreshSessionStore {
        SqlRefreshSessionStore {
            pool: self.pool.clone(),
        }
    }

    /// The pool, for the application's own queries on the same database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// `sqlite://PATH` gains `mode=rwc` (create when missing); `sqlite::memory:`
/// becomes a named shared in-memory database.
fn normalise(url: &str) -> (String, bool) {
    if url == "sqlite::memory:" || url == "sqlite://:memory:" {
        let name = crate::random::random_urlsafe::<9>().unwrap_or_default();
        return (
            format!("sqlite:file:wsgate-{name}?mode=memory&cache=shared"),
            true,
        );
    }
    if url.starts_with("sqlite:") && !url.contains('?') {
        return (format!("{url}?mode=rwc"), false);
    }
    (url.to_owned(), false)
}

fn user_of(row: &sqlx::any::AnyRow) -> Result<StoredUser, sqlx::Error> {
    let roles: String = row.try_get("roles")?;
    let roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
    let disabled: i64 = row.try_get("disabled")?;
    Ok(StoredUser::new(
        row.try_get::<String, _>("subject")?,
        row.try_get::<String, _>("password_hash")?,
    )
    .with_roles(roles)
    .disabled(disabled != 0))
}

fn now_ms() -> i64 {
    i64::try_from(unix_millis(SystemTime::now())).unwrap_or(i64::MAX)
}

impl CredentialStore for SqlCredentialStore {
    type Error = SqlStoreError;

    async fn find_user(&self, username: &str) -> Result<Option<StoredUser>, SqlStoreError> {
        let row = sqlx::query(
            "SELECT subject, password_hash, roles, disabled FROM wsgate_users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_of).transpose()?)
    }
}

impl AccountStore for SqlCredentialStore {
    async fn create_user(&self, username: &str, user: StoredUser) -> Result<bool, SqlStoreError> {
        let roles = serde_json::to_string(user.roles()).unwrap_or_else(|_| "[]".to_owned());
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO wsgate_users (username, subject, password_hash, roles, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(user.subject())
        .bind(user.password_hash())
        .bind(roles)
        .bind(i64::from(user.is_disabled()))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(&self, username: &str, hash: String) -> Result<bool, SqlStoreError> {
        self.update("password_hash = $2", username, hash).await
    }

    async fn set_roles(&self, username: &str, roles: Vec<String>) -> Result<bool, SqlStoreError> {
        let roles = serde_json::to_string(&roles).unwrap_or_else(|_| "[]".to_owned());
        self.update("roles = $2", username, roles).await
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, SqlStoreError> {
        self.update("disabled = $2", username, i64::from(disabled))
            .await
    }

    async fn list_users(&self) -> Result<Vec<(String, StoredUser)>, SqlStoreError> {
        let rows = sqlx::query(
            "SELECT username, subject, password_hash, roles, disabled FROM wsgate_users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get::<String, _>("username")?, user_of(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(SqlStoreError)
    }
}

impl SqlCredentialStore {
    /// `UPDATE … SET <assignment>, updated_at = $3 WHERE username = $1`;
    /// whether the user was there. The assignment is one of this module's
    /// constants, never client text.
    async fn update<T>(
        &self,
        assignment: &'static str,
        username: &str,
        value: T,
    ) -> Result<bool, SqlStoreError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
    {
        let statement =
            format!("UPDATE wsgate_users SET {assignment}, updated_at = $3 WHERE username = $1");
        let done = sqlx::query(&statement)
            .bind(username)
            .bind(value)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_what_sqlx_needs() {
        assert_eq!(
            normalise("sqlite://demo.db"),
            ("sqlite://demo.db?mode=rwc".to_owned(), false)
        );
        assert_eq!(
            normalise("sqlite://demo.db?mode=ro").0,
            "sqlite://demo.db?mode=ro"
        );
        let (memory, shared) = normalise("sqlite::memory:");
        assert!(
            shared
                && memory.starts_with("sqlite:file:wsgate-")
                && memory.ends_with("mode=memory&cache=shared")
        );
        assert_eq!(normalise("postgres://u@h/db").0, "postgres://u@h/db");
    }
}
