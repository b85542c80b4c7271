//! `calsaga catalog check|sync`.

use super::{CalcomArgs, CliResult, WorkflowsArg};
use calsaga::calcom_admin::catalog_sync;
use calsaga::catalog::Catalog;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Validate every service file and print the services with their segments.
    Check {
        #[command(flatten)]
        workflows: WorkflowsArg,
    },
    /// Compare the event types the catalogue books with Cal.com's (owner,
    /// length, slug, title); exit 1 while any differ. With --apply, patch
    /// what differs and create what is missing (then print the catalogue
    /// line to change, as a new event type gets a new id).
    Sync {
        #[command(flatten)]
        workflows: WorkflowsArg,
        /// Change Cal.com to match the catalogue.
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        calcom: CalcomArgs,
    },
}

pub fn run_catalog_check(dir: &std::path::Path) -> CliResult {
    let catalog = Catalog::load_dir(dir)?;
    for service in catalog.services() {
        println!(
            "{} ({}): {} min",
            service.id,
            service.name,
            service.total_min()
        );
        for (i, seg) in service.segments.iter().enumerate() {
            let staff: Vec<String> = seg
                .staff
                .iter()
                .map(|o| {
                    let host = catalog.hosts().label(o.host);
                    format!("host {host} via event type {}", o.event_type_id)
                })
                .collect();
            println!(
                "  {i}. {} {} min at +{} min, pause {} min; hosts: {}",
                seg.name,
                seg.duration_min,
                service.offset_min(i),
                seg.pause_after_min,
                staff.join(", ")
            );
        }
    }
    Ok(())
}

pub fn run_catalog_sync(dir: &std::path::Path, apply: bool, calcom: &CalcomArgs) -> CliResult {
    let catalog = Catalog::load_dir(dir)?;
    let calcom = calcom.connect()?;
    catalog_sync::run(&calcom, &catalog, apply, &mut std::io::stdout().lock())?;
    Ok(())
}
