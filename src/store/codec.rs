//! How API values sit in SQLite columns, in one place: instants are unix
//! milliseconds (UTC) in INTEGER columns named `*_ms`, workflow ids are
//! lower-case hyphenated UUID text. Must never hold SQL or policy; a value
//! that does not decode is reported as corruption by `error::read_error`.

use chrono::{DateTime, Utc};
use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use uuid::Uuid;

/// An instant stored as unix milliseconds. Sub-millisecond parts are dropped
/// on the way in, so callers should not expect nanoseconds back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ms(pub DateTime<Utc>);

impl ToSql for Ms {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.timestamp_millis()))
    }
}

impl FromSql for Ms {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let ms = i64::column_result(value)?;
        DateTime::from_timestamp_millis(ms).map(Ms).ok_or_else(|| {
            FromSqlError::Other(format!("{ms} ms is not a representable instant").into())
        })
    }
}

/// A workflow id stored as text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Id(pub Uuid);

impl ToSql for Id {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.hyphenated().to_string()))
    }
}

impl FromSql for Id {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        Uuid::parse_str(text)
            .map(Id)
            .map_err(|e| FromSqlError::Other(format!("workflow id {text:?}: {e}").into()))
    }
}

/// Read an instant column.
pub(super) fn time(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    Ok(row.get::<_, Ms>(idx)?.0)
}

/// Read a workflow id column.
pub(super) fn id(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    Ok(row.get::<_, Id>(idx)?.0)
}

/// A closed set of states stored as text, from one list of variant and
/// text: `ALL`, `as_str`, and the column conversions both ways (a text no
/// variant has reads as corruption).
macro_rules! text_states {
    ($ty:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: [$ty; [$($text),+].len()] = [$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl rusqlite::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $ty::ALL
                    .into_iter()
                    .find(|s| s.as_str() == text)
                    .ok_or_else(|| {
                        rusqlite::types::FromSqlError::Other(
                            format!("unknown {} {text:?}", $what).into(),
                        )
                    })
            }
        }
    };
}
pub(super) use text_states;
