//! Dev-only helpers: a fresh, empty database per test on SQLite, PostgreSQL or MySQL/MariaDB.
//!
//! Every test owns its world: SQLite gets a file in its own temporary directory (a file, not
//! `:memory:`, so WAL and several connections behave as in production); PostgreSQL and MySQL get
//! a newly created database named `jl_test_<uuid>`, dropped when the test ends. Which backends
//! run is chosen by `JINLIU_TEST_DATABASES` (default `sqlite,postgres,mysql`); a server that is
//! asked for and unreachable fails the test with a message saying how to start it. Servers are
//! found at `TEST_PG_URL` / `TEST_MYSQL_URL` (defaults: the local servers).

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};

/// A database engine under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL / MariaDB.
    MySql,
}

impl Engine {
    /// Name as used in `JINLIU_TEST_DATABASES`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
        }
    }
}

/// The engines selected for this run.
pub fn engines() -> Vec<Engine> {
    let list = std::env::var("JINLIU_TEST_DATABASES").unwrap_or_else(|_| "sqlite,postgres,mysql".into());
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "sqlite" => out.push(Engine::Sqlite),
            "postgres" | "postgresql" | "pg" => out.push(Engine::Postgres),
            "mysql" | "mariadb" => out.push(Engine::MySql),
            other => panic!("JINLIU_TEST_DATABASES: unknown database {other:?} (use sqlite, postgres, mysql)"),
        }
    }
    out
}

fn pg_server() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn mysql_server() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// Replaces the database name (the last path segment) of a server URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A fresh database that lives as long as this value.
pub struct TestDb {
    /// URL to give the store.
    pub url: String,
    /// Its engine.
    pub engine: Engine,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Creates an empty database on `engine`.
    pub async fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("jinliu.db").display());
                TestDb {
                    url,
                    engine,
                    cleanup: None,
                    _dir: Some(dir),
                }
            }
            Engine::Postgres | Engine::MySql => {
                let server = if engine == Engine::Postgres {
                    pg_server()
                } else {
                    mysql_server()
                };
                let name = format!("jl_test_{}", uuid::Uuid::new_v4().simple());
                let admin = connect_admin(engine, &server).await;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("creating test database {name} on {}: {e}", engine.name()));
                let _ = admin.close().await;
                TestDb {
                    url: with_database(&server, &name),
                    engine,
                    cleanup: Some((server, name)),
                    _dir: None,
                }
            }
        }
    }
}

async fn connect_admin(engine: Engine, server: &str) -> sea_orm::DatabaseConnection {
    let mut opts = sea_orm::ConnectOptions::new(server.to_owned());
    opts.max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    match Database::connect(opts).await {
        Ok(db) => db,
        Err(e) => {
            let how = match engine {
                Engine::Postgres => {
                    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set TEST_PG_URL"
                }
                _ => {
                    "start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` or set TEST_MYSQL_URL"
                }
            };
            panic!(
                "{} test server at {server} is unreachable ({e}); {how}. To run only SQLite, set JINLIU_TEST_DATABASES=sqlite explicitly.",
                engine.name()
            )
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.cleanup.take() else {
            return;
        };
        let engine = self.engine;
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread with
        // its own small runtime.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let admin = connect_admin(engine, &server).await;
                let sql = match engine {
                    Engine::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                let _ = admin.execute_unprepared(&sql).await;
                let _ = admin.close().await;
            });
        });
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_of_a_server_url_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test?ssl-mode=disabled", "x"),
            "mysql://root@127.0.0.1:3306/x?ssl-mode=disabled"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x"),
            "mysql://root@127.0.0.1:3306/x"
        );
    }
}
