//! `ecos pki`: SMKI certificates.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use ecos_smki::{
    CertKind, Certificate, Eui64, MpidRules, Mpids, PathPolicy, TestPki, TestPkiSpec, TrustStore,
    validate_path,
};

/// `ecos pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Print what an SMKI certificate or key file holds: kind, EUI-64, role,
    /// key usage, CN and MPIDs, serial, SKI/AKI, validity, policies.
    Show {
        /// A certificate (PEM or DER) or a PKCS#8 private key.
        file: PathBuf,
    },
    /// Write a complete, deterministic test PKI to DIR: root, issuing CA,
    /// device CA, supplier credentials (XML Sign with MPIDs in the CN, DS, KA,
    /// prepayment KA), the transitional and enduring CoS, ACB KA, DSP XML
    /// sign, and device DS/KA certificates. Keys are PKCS#8 PEM,
    /// certificates PEM; DIR/index.json says which file is what.
    Init {
        /// The output directory (created if missing; must be empty unless --force).
        dir: PathBuf,
        /// The seed every key, serial and signature derives from (default: the
        /// spec's, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Device EUIs (comma-separated, either form); default: the demo's four devices.
        #[arg(long, value_delimiter = ',')]
        devices: Option<Vec<Eui64>>,
        /// A JSON spec (fields of `TestPkiSpec`; missing fields take the demo values).
        /// --seed and --devices override it.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Write into a non-empty directory, overwriting files.
        #[arg(long)]
        force: bool,
    },
    /// Validate a certificate's path at an instant against trust anchors.
    Verify {
        /// The certificate (PEM or DER).
        cert: PathBuf,
        /// Trust anchor certificates (a root, or an issuing CA alone for a partial chain).
        #[arg(long = "anchor", required = true)]
        anchors: Vec<PathBuf>,
        /// Intermediate CA certificates.
        #[arg(long = "intermediate")]
        intermediates: Vec<PathBuf>,
        /// The instant (RFC 3339); default now.
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        /// Allowed policy OIDs; default the test organisation and device policies.
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// Do not check validity periods.
        #[arg(long)]
        no_time_checks: bool,
    },
}

/// Run an `ecos pki` subcommand.
pub fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Show { file } => show(&file),
        PkiCommand::Init {
            dir,
            seed,
            devices,
            spec,
            force,
        } => init(dir, seed, devices, spec, force).map(|_| ()),
        PkiCommand::Verify {
            cert,
            anchors,
            intermediates,
            at,
            policies,
            no_time_checks,
        } => verify(cert, anchors, intermediates, at, policies, no_time_checks),
    }
}

fn show(file: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let looks_like_key = bytes.windows(11).any(|w| w == b"PRIVATE KEY");
    if !looks_like_key {
        match Certificate::from_pem_or_der(&bytes) {
            Ok(c) => {
                print_cert(&c);
                return Ok(());
            }
            Err(cert_err) => {
                if let Ok(signer) = ecos_smki::SoftwareSigner::from_bytes(&bytes) {
                    print_key(&signer);
                    return Ok(());
                }
                return Err(cert_err)
                    .with_context(|| format!("{} is not an SMKI certificate", file.display()));
            }
        }
    }
    let signer = ecos_smki::SoftwareSigner::from_bytes(&bytes)
        .with_context(|| format!("{} is not a P-256 private key", file.display()))?;
    print_key(&signer);
    Ok(())
}

fn print_key(signer: &ecos_smki::SoftwareSigner) {
    println!(
        "P-256 private key; public key {}",
        hex::encode(ecos_smki::Signer::public_key(signer).as_bytes())
    );
}

fn print_cert(c: &Certificate) {
    let kind = match c.kind() {
        CertKind::Organisation => "organisation",
        CertKind::Device => "device",
        CertKind::Authority => "authority (CA)",
        _ => "other",
    };
    println!("kind:        {kind}");
    println!("subject:     {}", c.subject_rfc2253());
    println!("issuer:      {}", c.issuer_rfc2253());
    if let Some(e) = c.eui() {
        println!("EUI-64:      {e}");
    }
    if let Some(r) = c.role() {
        println!("role:        {r} (OU {})", r.ou());
    }
    if let Some(cn) = c.common_name() {
        println!("CN:          {cn}");
        if c.role() == Some(ecos_smki::Role::XmlSign) {
            match Mpids::from_cn(Some(cn), &MpidRules::default()) {
                Ok(m) => println!(
                    "MPIDs:       electricity {}, gas {}",
                    m.electricity.as_deref().unwrap_or("-"),
                    m.gas.as_deref().unwrap_or("-")
                ),
                Err(e) => println!("MPIDs:       invalid: {e}"),
            }
        }
    }
    println!("key usage:   {}", c.key_usage());
    if c.is_ca() {
        match c.path_len() {
            Some(n) => println!("CA:          yes, pathlen {n}"),
            None => println!("CA:          yes"),
        }
    }
    println!(
        "serial:      {} ({})",
        hex::encode_upper(c.serial()),
        c.serial_decimal()
    );
    println!(
        "SKI / AKI:   {} / {}",
        c.ski().map(hex::encode_upper).unwrap_or("-".into()),
        c.aki().map(hex::encode_upper).unwrap_or("-".into())
    );
    println!("validity:    {} .. {}", c.not_before(), c.not_after());
    println!("policies:    {}", c.policies().join(", "));
    println!("public key:  {}", hex::encode(c.public_key().as_bytes()));
    println!("SHA-256:     {}", hex::encode(c.sha256()));
}

fn init(
    dir: PathBuf,
    seed: Option<u64>,
    devices: Option<Vec<Eui64>>,
    spec_file: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<ecos_smki::testpki::Index> {
    let mut spec = match &spec_file {
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice::<TestPkiSpec>(&text)
                .with_context(|| format!("{} is not a test-PKI spec", p.display()))?
        }
        None => TestPkiSpec::demo(),
    };
    if let Some(seed) = seed {
        spec.seed = seed;
    }
    if let Some(d) = devices {
        spec.devices = d;
    }
    if dir.exists() && !force {
        let non_empty = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some();
        if non_empty {
            bail!("{} is not empty; use --force to overwrite", dir.display());
        }
    }
    let pki = TestPki::generate(&spec).context("generating the test PKI")?;
    let index = pki
        .write_to(&dir)
        .with_context(|| format!("writing {}", dir.display()))?;
    println!(
        "test PKI (seed {}) written to {}: {} credentials, index {}",
        spec.seed,
        dir.display(),
        index.entries.len(),
        dir.join("index.json").display()
    );
    println!(
        "  root           {}  ca/root.pem",
        pki.root().cert.subject_rfc2253()
    );
    println!(
        "  issuing CA     {}  ca/issuing-ca.pem",
        pki.issuing_ca().cert.subject_rfc2253()
    );
    println!(
        "  device CA      {}  ca/device-ca.pem",
        pki.device_ca().cert.subject_rfc2253()
    );
    for o in pki.organisations() {
        println!(
            "  supplier       {} {}  XML Sign CN {:?}  org/{}/",
            o.spec.eui,
            o.spec.name,
            o.xml_sign.cert.common_name().unwrap_or(""),
            o.spec.eui.to_compact()
        );
    }
    for (name, c) in [
        ("TCoS", pki.tcos()),
        ("ECoS", pki.ecos()),
        ("ACB KA", pki.acb_ka()),
        ("DSP XML sign", pki.dsp_xml_sign()),
    ] {
        println!(
            "  {name:<14} {}  SKI {}  {}.pem",
            c.cert.eui().map(|e| e.to_string()).unwrap_or_default(),
            c.cert.ski().map(hex::encode_upper).unwrap_or_default(),
            c.label()
        );
    }
    println!(
        "  devices        {}",
        pki.devices()
            .iter()
            .map(|d| d.eui.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(index)
}

fn verify(
    cert: PathBuf,
    anchors: Vec<PathBuf>,
    intermediates: Vec<PathBuf>,
    at: Option<jiff::Timestamp>,
    policies: Vec<String>,
    no_time_checks: bool,
) -> anyhow::Result<()> {
    let load = |p: &PathBuf| {
        Certificate::load(p).with_context(|| format!("loading certificate {}", p.display()))
    };
    let leaf = load(&cert)?;
    let mut store = TrustStore::new();
    for a in &anchors {
        store.add_anchor(load(a)?);
    }
    let extra = intermediates
        .iter()
        .map(load)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut policy = PathPolicy::default();
    if !policies.is_empty() {
        policy.allowed_policies = policies;
    }
    let at = at.unwrap_or_else(jiff::Timestamp::now);
    let path = validate_path(&leaf, &extra, &store, at, &policy, !no_time_checks)
        .with_context(|| format!("{} does not validate at {at}", cert.display()))?;
    println!(
        "OK at {at}: path of {} certificates",
        path.certificates().len()
    );
    for c in path.certificates() {
        println!(
            "  {}  serial {}",
            if c.subject_rfc2253().is_empty() {
                format!(
                    "(device {})",
                    c.eui().map(|e| e.to_string()).unwrap_or_default()
                )
            } else {
                c.subject_rfc2253()
            },
            hex::encode_upper(c.serial())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_pki_and_refuses_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("ecos-pki-init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let eui: Eui64 = "00DB123456789999".parse().unwrap();
        init(dir.clone(), Some(5), Some(vec![eui]), None, false).unwrap();
        let index: ecos_smki::testpki::Index =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index.seed, 5);
        assert_eq!(index.entries.len(), 3 + 3 * 4 + 4 + 2);
        let dev = Certificate::load(dir.join("device/00DB123456789999/ds.pem")).unwrap();
        assert_eq!(dev.eui(), Some(eui));
        assert!(init(dir.clone(), Some(5), None, None, false).is_err());
        // A spec file: its seed holds unless --seed is given.
        let spec_path =
            std::env::temp_dir().join(format!("ecos-pki-spec-{}.json", std::process::id()));
        std::fs::write(&spec_path, br#"{"seed": 9, "devices": []}"#).unwrap();
        let index = init(dir.clone(), None, None, Some(spec_path.clone()), true).unwrap();
        assert_eq!(index.seed, 9);
        assert_eq!(index.entries.len(), 3 + 3 * 4 + 4);
        std::fs::remove_file(&spec_path).unwrap();
        init(dir.clone(), Some(5), None, None, true).unwrap();
        show(&dir.join("org/90B3D51F30010000/xml-sign.pem")).unwrap();
        show(&dir.join("org/90B3D51F30010000/xml-sign.key.pem")).unwrap();
        verify(
            dir.join("org/90B3D51F30010000/xml-sign.pem"),
            vec![dir.join("ca/root.pem")],
            vec![dir.join("ca/issuing-ca.pem")],
            Some("2025-06-01T00:00:00Z".parse().unwrap()),
            vec![],
            false,
        )
        .unwrap();
        assert!(
            verify(
                dir.join("org/90B3D51F30010000/xml-sign.pem"),
                vec![dir.join("ca/root.pem")],
                vec![],
                Some("2025-06-01T00:00:00Z".parse().unwrap()),
                vec![],
                false,
            )
            .is_err()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
