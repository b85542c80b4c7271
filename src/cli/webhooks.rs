//! `calsaga webhooks register|list|delete`.

use super::{CalcomArgs, CliResult};
use calsaga::calcom_admin::subscriptions;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe URL to the booking triggers calsaga handles, with a new
    /// secret printed once for CALSAGA_WEBHOOK_SECRET.
    Register {
        /// Where Cal.com posts, e.g. https://calsaga.example.com/webhooks/calcom.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        calcom: CalcomArgs,
    },
    /// Show every subscription of the API key's user.
    List {
        #[command(flatten)]
        calcom: CalcomArgs,
    },
    /// Remove the subscription ID (from `list`).
    Delete {
        id: String,
        #[command(flatten)]
        calcom: CalcomArgs,
    },
}

pub fn run_webhooks(command: WebhooksCommand) -> CliResult {
    match command {
        WebhooksCommand::Register { url, calcom } => {
            let calcom = calcom.connect()?;
            let registered = calcom.block_on(subscriptions::register(calcom.client(), &url))?;
            print!("{}", subscriptions::registered_report(&registered));
        }
        WebhooksCommand::List { calcom } => {
            let calcom = calcom.connect()?;
            let webhooks = calcom.block_on(subscriptions::list(calcom.client()))?;
            print!("{}", subscriptions::table(&webhooks));
        }
        WebhooksCommand::Delete { id, calcom } => {
            let calcom = calcom.connect()?;
            let deleted = calcom.block_on(subscriptions::delete(calcom.client(), &id))?;
            println!(
                "deleted Cal.com webhook {} for {}",
                deleted.id, deleted.subscriber_url
            );
        }
    }
    Ok(())
}
