//! The three ways store code runs a statement: write, read many, read one.
//! All go through SQLite's prepared-statement cache (the same few statements
//! run thousands of times) and translate errors in one place. Must never
//! build SQL from values: values go in parameters.

use rusqlite::{Connection, OptionalExtension, Params, Row};

use super::StoreError;
use super::error::write_error;

/// Run one write statement on the writer's connection; the rows it changed.
pub(super) fn execute(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(write_error)
}

/// Every row of a query, each mapped by `map`.
pub(super) fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare_cached(sql)?.query_map(params, map)?.collect()
}

/// The first row of a query, if any, mapped by `map`.
pub(super) fn row<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    conn.prepare_cached(sql)?.query_row(params, map).optional()
}
