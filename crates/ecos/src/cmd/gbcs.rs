//! `ecos gbcs`: GBCS CS02b messages.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use ecos_gbcs::{Cra, Message, SignatureField, mac};
use ecos_smki::{Certificate, Eui64, SoftwareKeyAgreement};
use serde_json::{Value, json};

/// `ecos gbcs` subcommands.
#[derive(Debug, Subcommand)]
pub enum GbcsCommand {
    /// Decode a CS02b command, response or 0x00CB alert and print it as JSON.
    ///
    /// Input is hex (whitespace ignored) or binary. With --keys, the
    /// signature is verified with `<originator>-ds.pem` and the ACB MAC with
    /// `<acb>-ka.key` + `<device>-ka.pem` (or `<device>-ka.key` +
    /// `<acb>-ka.pem`); the command fails if either does not verify.
    Decode {
        /// The message file, or `-` for standard input.
        file: String,
        /// A key directory laid out like the RTDS keystore.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// The ACB's EUI-64 (its KA key computes the MAC).
        #[arg(long, default_value = "90B3D51F30000002")]
        acb: Eui64,
    },
}

/// Run an `ecos gbcs` subcommand.
pub fn run(cmd: GbcsCommand) -> anyhow::Result<()> {
    match cmd {
        GbcsCommand::Decode { file, keys, acb } => {
            let raw = read_input(&file)?;
            let bytes = hex_or_binary(&raw)?;
            let (json, ok) = decode(&bytes, keys.as_deref(), acb)?;
            println!("{}", serde_json::to_string_pretty(&json)?);
            if !ok {
                bail!("verification failed (see \"verification\")");
            }
            Ok(())
        }
    }
}

fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))
    }
}

/// Hex if every non-whitespace byte is a hex digit, else the bytes as given.
fn hex_or_binary(raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let digits: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_hexdigit) {
        hex::decode(&digits).context("odd number of hex digits")
    } else {
        Ok(raw.to_vec())
    }
}

fn key_file(dir: &Path, eui: Eui64, suffix: &str) -> PathBuf {
    dir.join(format!("{}-{suffix}", eui.to_compact().to_lowercase()))
}

/// Decode to JSON; the flag is false if a requested verification failed.
fn decode(bytes: &[u8], keys: Option<&Path>, acb: Eui64) -> anyhow::Result<(Value, bool)> {
    let msg = Message::decode(bytes).context("decoding the GBCS message")?;
    let f = &msg.frame;
    let h = &f.header;
    let signed = f.signed_range();
    let mut certs = Vec::new();
    if let ecos_gbcs::Body::Command(c) = &msg.body {
        let all = c
            .replacements
            .iter()
            .map(|r| ("replacement", r.certificate.as_bytes()))
            .chain(
                c.certification_path
                    .iter()
                    .map(|p| ("certification path", p.as_bytes())),
            );
        for (role, der) in all {
            certs.push(match Certificate::from_der(der) {
                Ok(cert) => json!({
                    "in": role,
                    "subject": cert.subject_rfc2253(),
                    "eui": cert.eui(),
                    "role": cert.role().map(|r| r.to_string()),
                    "ski": cert.ski().map(hex::encode_upper),
                    "not_after": cert.not_after().to_string(),
                }),
                Err(e) => json!({ "in": role, "error": e.to_string() }),
            });
        }
    }
    let mut ok = true;
    let verification = match keys {
        None => json!("not checked (no --keys)"),
        Some(dir) => {
            let sig = match f.signature {
                SignatureField::Present(_) => {
                    let path = key_file(dir, h.originator, "ds.pem");
                    match Certificate::load(&path) {
                        Ok(cert) => match f.verify_signature(cert.public_key()) {
                            Ok(()) => format!("verified with {}", path.display()),
                            Err(e) => {
                                ok = false;
                                format!("FAILED with {}: {e}", path.display())
                            }
                        },
                        Err(e) => {
                            ok = false;
                            format!("no key: {}: {e}", path.display())
                        }
                    }
                }
                SignatureField::Empty => "none (MAC only)".to_string(),
                SignatureField::Absent => "none (pre-command)".to_string(),
            };
            let mac_result = if f.mac.is_none() {
                "none (no MAC layer)".to_string()
            } else {
                let device = if h.cra == Cra::Command {
                    h.recipient
                } else {
                    h.originator
                };
                match verify_mac(&msg, dir, acb, device) {
                    Ok(how) => how,
                    Err(e) => {
                        ok = false;
                        format!("FAILED: {e:#}")
                    }
                }
            };
            json!({ "signature": sig, "mac": mac_result })
        }
    };
    let json = json!({
        "length": bytes.len(),
        "mac_header": f.mac_header,
        "header": h,
        "signed_range": [signed.start, signed.end],
        "content_range": [f.content_range().start, f.content_range().end],
        "signature": f.signature,
        "mac": f.mac.map(hex::encode_upper),
        "body": msg.body,
        "certificates": certs,
        "verification": verification,
    });
    Ok((json, ok))
}

fn verify_mac(msg: &Message<'_>, dir: &Path, acb: Eui64, device: Eui64) -> anyhow::Result<String> {
    let pairs = [
        (
            key_file(dir, acb, "ka.key"),
            key_file(dir, device, "ka.pem"),
        ),
        (
            key_file(dir, device, "ka.key"),
            key_file(dir, acb, "ka.pem"),
        ),
    ];
    for (private, public) in pairs {
        if private.is_file() && public.is_file() {
            let own = SoftwareKeyAgreement::from_file(&private)
                .with_context(|| format!("{}", private.display()))?;
            let peer =
                Certificate::load(&public).with_context(|| format!("{}", public.display()))?;
            mac::verify(&msg.frame, &own, peer.public_key())
                .with_context(|| format!("with {} and {}", private.display(), public.display()))?;
            return Ok(format!(
                "verified with {} and {}",
                private.display(),
                public.display()
            ));
        }
    }
    bail!(
        "no key pair: need {acb}-ka.key and {device}-ka.pem (or {device}-ka.key and {acb}-ka.pem) in {}",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 7's acceptance: a command built by `ecos-gbcs` and the response
    /// the simulated meter builds for it both decode and verify here.
    #[test]
    fn pipeline_commands_and_simulator_responses_decode_and_verify() {
        use ecos_gbcs::{CertificateDer, Cs02bCommand, SupplierByTransCos, SupplierFloors};
        use ecos_party::demo;
        let pki = std::sync::Arc::new(demo::pki(3).unwrap());
        let org = pki.organisation(demo::SUPPLIER_B).unwrap();
        let der = |c: &ecos_smki::Certificate| CertificateDer::new(c.der().to_vec()).unwrap();
        let tcos = pki.tcos();
        let acb = pki.acb_ka();
        let device = pki.device(demo::ESME_TCOS).unwrap();
        let cmd = Cs02bCommand::supplier_by_trans_cos(SupplierByTransCos {
            counter: 1 << 56,
            originator: tcos.cert.eui().unwrap(),
            recipient: demo::ESME_TCOS,
            supplier_ds: der(&org.ds.cert),
            supplier_ka: der(&org.ka.cert),
            supplier_pp_ka: Some(der(&org.pp_ka.cert)),
            certification_path: vec![der(&pki.issuing_ca().cert)],
            apply_time_based_cpv_checks: true,
            supplier_floors: Some(SupplierFloors {
                floor: 0,
                prepayment_top_up_floor: None,
            }),
            execution: None,
        })
        .unwrap()
        .sign_and_mac(
            &tcos.signer().unwrap(),
            &acb.key_agreement().unwrap(),
            device.ka.cert.public_key(),
        )
        .unwrap();
        let fleet = crate::wiring::demo_fleet(&pki, demo::SUPPLIER_A).unwrap();
        let response = fleet
            .handle(demo::ESME_TCOS, &cmd, jiff::Timestamp::now(), None)
            .unwrap()
            .response;

        let dir = tempfile::tempdir().unwrap();
        let acb_eui = acb.cert.eui().unwrap();
        let write = |eui: Eui64, suffix: &str, text: String| {
            std::fs::write(key_file(dir.path(), eui, suffix), text).unwrap()
        };
        write(tcos.cert.eui().unwrap(), "ds.pem", tcos.cert.to_pem());
        write(acb_eui, "ka.key", acb.key_pem());
        write(demo::ESME_TCOS, "ka.pem", device.ka.cert.to_pem());
        write(demo::ESME_TCOS, "ds.pem", device.ds.cert.to_pem());

        let (json, ok) = decode(&cmd, Some(dir.path()), acb_eui).unwrap();
        assert!(ok, "command: {json:#}");
        assert!(
            json["verification"]["signature"]
                .as_str()
                .unwrap()
                .starts_with("verified")
        );
        assert!(
            json["verification"]["mac"]
                .as_str()
                .unwrap()
                .starts_with("verified")
        );
        let (json, ok) = decode(&response, Some(dir.path()), acb_eui).unwrap();
        assert!(ok, "response: {json:#}");
        assert!(
            json["verification"]["signature"]
                .as_str()
                .unwrap()
                .starts_with("verified")
        );
        assert_eq!(json["body"]["kind"], "response");
    }

    #[test]
    fn hex_or_binary_input() {
        assert_eq!(hex_or_binary(b"DF09\n01 ").unwrap(), vec![0xDF, 0x09, 0x01]);
        assert_eq!(hex_or_binary(&[0xDF, 0x09]).unwrap(), vec![0xDF, 0x09]);
        assert!(hex_or_binary(b"DF0").is_err());
    }

    #[test]
    fn decodes_and_verifies_a_fixture() {
        let fx = std::env::var_os("ECOS_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
            });
        let vector = fx.join(
            "rtds/6.23_CS02bSupplierByTransCoS/CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_COMMAND_GBCS.HEX",
        );
        if !vector.is_file() {
            eprintln!("SKIPPED: fixtures not found at {}", fx.display());
            return;
        }
        let bytes = hex_or_binary(&std::fs::read(&vector).unwrap()).unwrap();
        let acb: Eui64 = "90B3D51F30000002".parse().unwrap();
        let (json, ok) = decode(&bytes, Some(&fx.join("keystore")), acb).unwrap();
        assert!(ok, "{json:#}");
        assert_eq!(json["header"]["counter"], 6001);
        assert_eq!(json["header"]["message_code"], "0x0107");
        assert_eq!(json["signed_range"], json!([16, 1808]));
        assert_eq!(json["body"]["kind"], "command");
        assert_eq!(json["certificates"].as_array().unwrap().len(), 4);
        let mut bad = bytes.clone();
        bad[200] ^= 1;
        let (json, ok) = decode(&bad, Some(&fx.join("keystore")), acb).unwrap();
        assert!(!ok);
        assert!(
            json["verification"]["signature"]
                .as_str()
                .unwrap()
                .starts_with("FAILED")
        );
        assert!(
            json["verification"]["mac"]
                .as_str()
                .unwrap()
                .starts_with("FAILED")
        );
    }
}
