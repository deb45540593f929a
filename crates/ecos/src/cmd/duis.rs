//! `ecos duis`: sign and verify DUIS XML under the pinned XML-DSig profile.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use ecos_smki::{Certificate, Signer as _, SoftwareSigner};
use ecos_xmldsig::{Limits, MatchedForm, VerifyOptions};

/// `ecos duis` subcommands.
#[derive(Debug, Subcommand)]
pub enum DuisCommand {
    /// Sign a DUIS document: enveloped XML-DSig, last child of the root, compact output.
    Sign {
        /// The signer's P-256 private key (PKCS#8 or SEC1, PEM or DER).
        #[arg(long)]
        key: PathBuf,
        /// The signer's certificate (PEM or DER): names it in KeyInfo (issuer, serial).
        #[arg(long)]
        cert: PathBuf,
        /// Write the signed document here instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The unsigned document ("-" for stdin).
        input: PathBuf,
    },
    /// Verify a signed DUIS document against one or more candidate certificates.
    Verify {
        /// A certificate that may have signed it (repeatable); the one named by
        /// the document's issuer and serial is used.
        #[arg(long, required = true)]
        cert: Vec<PathBuf>,
        /// Retry once with whitespace-only text dropped, as the DCC Boxed signer digests.
        #[arg(long)]
        whitespace_compat: bool,
        /// Write the signed content (what was digested, canonical form) here.
        #[arg(long)]
        signed_out: Option<PathBuf>,
        /// The signed document ("-" for stdin).
        input: PathBuf,
    },
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .context("reading stdin")?;
        Ok(v)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Run an `ecos duis` subcommand.
pub fn run(cmd: DuisCommand) -> anyhow::Result<()> {
    match cmd {
        DuisCommand::Sign {
            key,
            cert,
            out,
            input,
        } => {
            let signer = SoftwareSigner::from_file(&key)
                .with_context(|| format!("loading key {}", key.display()))?;
            let cert = Certificate::load(&cert)
                .with_context(|| format!("loading certificate {}", cert.display()))?;
            if cert.public_key() != signer.public_key() {
                bail!("the key does not belong to the certificate");
            }
            let doc = read_input(&input)?;
            let signed = ecos_xmldsig::sign(
                &doc,
                &signer,
                &cert.issuer_rfc2253(),
                &cert.serial_decimal(),
            )
            .with_context(|| format!("signing {}", input.display()))?;
            match out {
                Some(p) => std::fs::write(&p, &signed)
                    .with_context(|| format!("writing {}", p.display()))?,
                None => std::io::stdout()
                    .write_all(&signed)
                    .context("writing stdout")?,
            }
            Ok(())
        }
        DuisCommand::Verify {
            cert,
            whitespace_compat,
            signed_out,
            input,
        } => {
            let mut certs = Vec::new();
            for p in &cert {
                let c = Certificate::load(p)
                    .with_context(|| format!("loading certificate {}", p.display()))?;
                certs.push((p.clone(), c));
            }
            let doc = read_input(&input)?;
            let opts = VerifyOptions::default()
                .with_limits(Limits::default())
                .with_whitespace_compat(whitespace_compat);
            let mut used = None;
            let v = ecos_xmldsig::verify_with(&doc, &opts, |issuer, serial| {
                let (p, c) = certs.iter().find(|(_, c)| {
                    c.serial_decimal() == serial && ecos_xmldsig::dn_eq(&c.issuer_rfc2253(), issuer)
                })?;
                used = Some(p.clone());
                Some(c.public_key().clone())
            })
            .with_context(|| format!("verifying {}", input.display()))?;
            println!(
                "signature OK: issuer {}, serial {}, certificate {}{}",
                v.issuer,
                v.serial,
                used.map_or_else(|| "?".to_string(), |p| p.display().to_string()),
                match v.form {
                    MatchedForm::Strict => "",
                    MatchedForm::WhitespaceStripped => " (matched only with whitespace stripped)",
                }
            );
            if let Some(p) = signed_out {
                std::fs::write(&p, &v.signed_xml)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zaz1() -> Option<PathBuf> {
        let dir = std::env::var_os("ECOS_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
            });
        if dir.join("zaz1").is_dir() {
            Some(dir)
        } else {
            eprintln!("SKIP: fixtures not found at {}", dir.display());
            None
        }
    }

    #[test]
    fn sign_then_verify_with_the_zaz1_xml_sign_key() -> anyhow::Result<()> {
        let Some(fx) = zaz1() else { return Ok(()) };
        let tmp = tempfile::tempdir()?;
        let signed = tmp.path().join("signed.xml");
        let content = tmp.path().join("content.xml");
        let cert = fx.join("zaz1/xml-sign-90B3D51F30010000-ds.pem");
        run(DuisCommand::Sign {
            key: fx.join("zaz1/xml-sign-90B3D51F30010000-ds.key"),
            cert: cert.clone(),
            out: Some(signed.clone()),
            input: fx.join("duis-signed/6.23_IMMEDIATE.validated-unsigned.xml"),
        })?;
        run(DuisCommand::Verify {
            cert: vec![fx.join("zaz1/Z1-supplier-ds.pem"), cert.clone()],
            whitespace_compat: false,
            signed_out: Some(content.clone()),
            input: signed.clone(),
        })?;
        // The same content the DCC Boxed tool digested.
        let mut expected =
            std::fs::read(fx.join("duis-signed/6.23_IMMEDIATE.validated-unsigned.xml"))?;
        expected.pop();
        assert_eq!(std::fs::read(&content)?, expected);
        // The wrong certificate only: refused.
        let e = run(DuisCommand::Verify {
            cert: vec![fx.join("zaz1/Z1-supplier-ds.pem")],
            whitespace_compat: false,
            signed_out: None,
            input: signed,
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("no certificate known"), "{e:#}");
        // A key that is not the certificate's.
        let e = run(DuisCommand::Sign {
            key: fx.join("zaz1/Z1-supplier-ds.key"),
            cert,
            out: None,
            input: fx.join("duis-signed/6.23_IMMEDIATE.validated-unsigned.xml"),
        })
        .unwrap_err();
        assert!(e.to_string().contains("does not belong"));
        Ok(())
    }
}
