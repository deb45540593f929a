//! `ecos pki`: SMKI certificates.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

/// `ecos pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Print what an SMKI certificate or key file holds: EUI-64, role, key usage.
    Show {
        /// A certificate (PEM or DER) or a PKCS#8 private key.
        file: PathBuf,
    },
}

/// Run an `ecos pki` subcommand.
pub fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Show { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let signer = ecos_smki::SoftwareSigner::from_bytes(&bytes)
                .with_context(|| format!("{} is not a P-256 private key", file.display()))?;
            println!(
                "P-256 private key; public key {}",
                hex::encode(ecos_smki::Signer::public_key(&signer).as_bytes())
            );
            Ok(())
        }
    }
}
