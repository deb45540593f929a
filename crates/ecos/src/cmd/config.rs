//! `ecos config`: show or check the effective configuration.

use clap::Subcommand;

use crate::config::ConfigArgs;

/// `ecos config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file, environment and flags
    /// applied, defaults filled in) as TOML, with secrets masked.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Load the configuration and every key file it names, checking the
    /// files' permissions, and say whether the service could start with it.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// Run an `ecos config` subcommand.
pub fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Show { config } => {
            let c = config.load()?;
            print!("{}", c.masked().to_toml()?);
            Ok(())
        }
        ConfigCommand::Check { config } => {
            let c = config.load()?;
            c.check_key_files()?;
            for (name, path) in c.key_files() {
                println!("{name}: {} (permissions OK)", path.display());
            }
            let keys = c.load_keys()?;
            let loaded = [
                ("keys.tcos_signing", keys.tcos_signing.is_some()),
                ("keys.ecos_signing", keys.ecos_signing.is_some()),
                ("keys.acb_key_agreement", keys.acb_key_agreement.is_some()),
                ("keys.dsp_xml_sign", keys.dsp_xml_sign.is_some()),
            ];
            for (name, ok) in loaded {
                println!("{name}: {}", if ok { "loaded" } else { "not configured" });
            }
            if let (Some(cert), Some(key)) = (&c.http.tls.cert, &c.http.tls.key) {
                crate::serve::tls::server_config(cert, key)?;
                println!("http.tls: certificate and key usable");
            }
            println!("configuration OK");
            Ok(())
        }
    }
}
