//! `calsaga token create|list|revoke`.

use super::{CliResult, DbArg};
use calsaga::admin;
use calsaga::http;
use calsaga::store::{self, TokenChange};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once: the token alone on the first line
    /// of stdout. Only its SHA-256 is stored.
    Create {
        /// SQLite database file of `calsaga serve`.
        #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
        db: PathBuf,
        /// A name for the token, shown in logs instead of the token.
        #[arg(long)]
        name: String,
        /// booking (services, availability, bookings, holds) or admin (everything).
        #[arg(long, value_parser = ["booking", "admin"])]
        scope: String,
    },
    /// Every token's name, scope, creation and last use (never the token:
    /// only its hash is stored). Read-only; works while `serve` runs.
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Delete the token named NAME; a running `serve` refuses it from its
    /// next request.
    Revoke {
        name: String,
        /// SQLite database file of `calsaga serve`.
        #[arg(long, default_value = "calsaga.db", env = "CALSAGA_DB")]
        db: PathBuf,
    },
}

pub fn run_token_create(db: &std::path::Path, name: &str, scope: &str) -> CliResult {
    let (token, row) = http::new_token(name, scope.parse()?, chrono::Utc::now())?;
    store::change_tokens(db, TokenChange::Put(row))?;
    println!("{token}");
    eprintln!(
        "created token {name:?} with the {scope} scope; it is shown only this once (a running serve accepts it within a second)"
    );
    Ok(())
}

pub fn run_token_list(db: &std::path::Path) -> CliResult {
    let store = admin::open(db)?;
    let tokens = store.tokens()?;
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    println!(
        "{:<32}  {:<8}  {:<20}  LAST USED",
        "NAME", "SCOPE", "CREATED"
    );
    for t in &tokens {
        println!(
            "{:<32}  {:<8}  {:<20}  {}",
            t.name,
            t.scope,
            time(t.created_at),
            t.last_used_at.map_or_else(|| "never".to_string(), time)
        );
    }
    println!("{} token(s)", tokens.len());
    Ok(())
}

pub fn run_token_revoke(db: &std::path::Path, name: &str) -> CliResult {
    store::change_tokens(
        db,
        TokenChange::Revoke {
            name: name.to_string(),
        },
    )?;
    eprintln!("revoked token {name:?}; a running serve refuses it within a second");
    Ok(())
}
