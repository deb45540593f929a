//! `ecos`: the Enduring Change of Supplier service, its tools and its demo.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

/// ecos: the DCC-side Enduring Change of Supplier (ECoS) party for GB smart metering.
///
/// Takes a gaining supplier's signed DUIS 6.23 request, checks that the
/// supplier is entitled to take over the meter, and builds the GBCS CS02b
/// command, signed with the device's Change of Supplier key, that swaps the
/// supplier certificates on the device.
#[derive(Debug, Parser)]
#[command(name = "ecos", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SMKI certificates: inspect them and build a test PKI.
    #[command(subcommand)]
    Pki(cmd::pki::PkiCommand),
    /// DUIS XML signatures: sign and verify under the pinned XML-DSig profile.
    #[command(subcommand)]
    Duis(cmd::duis::DuisCommand),
    /// GBCS CS02b messages: decode commands, responses and alerts, verify signature and MAC.
    #[command(subcommand)]
    Gbcs(cmd::gbcs::GbcsCommand),
    /// Registration data: import files, look up the registered supplier.
    #[command(subcommand)]
    Regdata(cmd::regdata::RegdataCommand),
    /// Smart metering inventory and service users: import files, show a device.
    #[command(subcommand)]
    Inventory(cmd::inventory::InventoryCommand),
    /// Synthetic data sets for demos, tests and benchmarks.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Run the service: DUIS endpoint, polling, metrics, health and admin API.
    Serve(cmd::serve::ServeArgs),
    /// Show or check the effective configuration.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Run every check on a signed 6.23 without storing or sending anything, and explain the verdict.
    Check(cmd::check::CheckArgs),
    /// The audit log: verify its hash chain.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Run the whole system with generated keys, data and simulated meters, and show it working.
    Demo(cmd::demo::DemoArgs),
    /// Simulated devices, WAN and supplier, for manual testing.
    #[command(subcommand)]
    Sim(cmd::sim::SimCommand),
    /// The TCoS -> ECoS credential migration: plan, run, status.
    #[command(subcommand)]
    Migrate(cmd::migrate::MigrateCommand),
    /// MPID readiness: would an organisation's 6.23 pass today and on the switch date, per MPxN and meter.
    Readiness(cmd::readiness::ReadinessArgs),
    /// Reports over recorded traffic: refused requests by reason and service user.
    #[command(subcommand)]
    Report(cmd::report::ReportCommand),
    /// Load runs against the served API, with same-run baselines.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

mod cmd;
mod config;
mod serve;
mod wiring;

/// mimalloc for Rust's allocations (SQLite keeps the C library's): the 6.23
/// path allocates small, short-lived buffers (XML node table, request,
/// certificates, command) on every request; the pipeline bench, which uses
/// it too, measures about 1% fewer instructions per command than with glibc
/// malloc (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Pki(c) => cmd::pki::run(c),
        Command::Duis(c) => cmd::duis::run(c),
        Command::Gbcs(c) => cmd::gbcs::run(c),
        Command::Regdata(c) => cmd::regdata::run(c),
        Command::Inventory(c) => cmd::inventory::run(c),
        Command::Data(c) => cmd::data::run(c),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Config(c) => cmd::config::run(c),
        Command::Sim(c) => cmd::sim::run(c),
        Command::Migrate(c) => cmd::migrate::run(c),
        Command::Readiness(a) => cmd::readiness::run(a),
        Command::Report(c) => cmd::report::run(c),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Audit(c) => cmd::audit::run(c),
        Command::Bench(c) => cmd::bench::run(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
