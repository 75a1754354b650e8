//! The usage read side on PostgreSQL: binds and runs `usage_query`'s
//! statements, the same text SQLite runs. Every number they select is
//! cast to BIGINT or DOUBLE PRECISION (PostgreSQL's SUM of a BIGINT is a
//! NUMERIC), so a column reads here as the same Rust type as there.

use super::postgres::Postgres;
use super::usage_query::{Bind, ReadColumns, Sql, UsageReader};
use super::StoreError;
use sqlx::postgres::PgRow;
use sqlx::Row;

impl UsageReader for Postgres {
    type Row = PgRow;

    async fn fetch(&self, sql: &Sql) -> Result<Vec<PgRow>, StoreError> {
        // The text is built from fixed fragments; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.text.clone()));
        for b in &sql.binds {
            q = match b {
                Bind::Int(n) => q.bind(*n),
                Bind::Text(s) => q.bind(s.clone()),
            };
        }
        q.fetch_all(&self.pool).await.map_err(|e| self.fail(e))
    }
}

// A decoding error names columns, never values of a key: the plain
// mapping serves.
use super::postgres::backend as decode;

impl ReadColumns for PgRow {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(i).map_err(decode)
    }

    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i).map_err(decode)
    }

    fn real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.try_get(i).map_err(decode)
    }

    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        self.try_get(i).map_err(decode)
    }
}
