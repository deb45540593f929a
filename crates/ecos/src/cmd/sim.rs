//! `ecos sim`: simulated devices, a simulated WAN and a supplier, for
//! manual testing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use ecos_duis::Execution;
use ecos_gbcs::Message;
use ecos_sim::device::DeviceContext;
use ecos_sim::reference::reference_esme;
use ecos_sim::supplier::{
    Defect, RequestSpec, SupplierClient, SupplierOrg, expired_xml_sign, signed_request,
};
use ecos_sim::{
    CellId, DeviceKind, DeviceTransport, Fleet, HeadEnd, KeySource, SeededKeys, SimClock, SimWan,
    Templates, WanConfig,
};
use ecos_smki::{Eui64, PathPolicy, TestPki, TestPkiSpec};
use serde_json::{Value, json};

/// `ecos sim` subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run CS02b commands through the RTDS reference ESME 00DB1234567890A0
    /// (its cells from the fixtures, a generated DS key) and print each
    /// outcome, response and the cells as JSON.
    ///
    /// Commands are hex or binary files, run in order. With --tick, held
    /// future-dated commands are executed at that instant and their 0x00CB
    /// alerts printed.
    Device {
        /// Command files (hex or binary), in order.
        #[arg(long = "command", required = true)]
        commands: Vec<PathBuf>,
        /// The shared fixtures directory (rtds/, keystore/, zaz1/).
        #[arg(long, env = "ECOS_FIXTURES", default_value = "../shared/fixtures")]
        fixtures: PathBuf,
        /// Device clock for the commands (RFC 3339).
        #[arg(long, default_value = "2025-10-01T00:00:00Z")]
        at: jiff::Timestamp,
        /// Afterwards, run the future-dated scheduler at this instant.
        #[arg(long)]
        tick: Option<jiff::Timestamp>,
        /// Seed of the generated device DS key.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Build and sign a DUIS 6.23 request as a test-PKI supplier; print the
    /// XML, or POST it with --submit and print the answer.
    Request {
        /// Test-PKI spec (JSON, as for `ecos pki init`); default: the demo spec.
        #[arg(long)]
        pki_spec: Option<PathBuf>,
        /// The supplier organisation.
        #[arg(long, default_value = "90B3D51F30030000")]
        org: Eui64,
        /// The target device.
        #[arg(long)]
        device: Eui64,
        /// RequestID counter.
        #[arg(long)]
        counter: u64,
        /// ImportMPxN.
        #[arg(long)]
        mpxn: String,
        /// Future-dated execution time (RFC 3339).
        #[arg(long, conflicts_with = "cancel")]
        execute_at: Option<jiff::Timestamp>,
        /// A cancellation of the pending future-dated request.
        #[arg(long)]
        cancel: bool,
        /// `ApplyTimeBasedCPVChecks` false.
        #[arg(long)]
        no_time_checks: bool,
        /// What to get wrong on purpose.
        #[arg(long, value_enum, default_value_t = DefectArg::None)]
        defect: DefectArg,
        /// For --defect wrong-mpxn: the MPxN to put; for wrong-mpid: the other organisation.
        #[arg(long)]
        defect_value: Option<String>,
        /// POST to this ecos (e.g. http://127.0.0.1:8080) instead of printing.
        #[arg(long)]
        submit: Option<String>,
        /// Write the signed XML here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Migrate a simulated fleet from the TCoS to the ECoS credential over a
    /// simulated WAN (virtual time) and print what happened.
    Migrate {
        /// Generated fleet size (ignored with --inventory).
        #[arg(long, default_value_t = 1000)]
        devices: u64,
        /// An inventory CSV (ecos-store format) to build the fleet from.
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// WAN behaviour (JSON or TOML; fields of `WanConfig`).
        #[arg(long)]
        wan: Option<PathBuf>,
        /// Attempts per device (a device that refuses is retried).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Test-PKI spec (JSON); default: the demo spec.
        #[arg(long)]
        pki_spec: Option<PathBuf>,
        /// Seed of the device keys.
        #[arg(long, default_value_t = 1)]
        key_seed: u64,
        /// How much faster than real time the simulation runs.
        #[arg(long, default_value_t = 1000.0)]
        speed: f64,
    },
}

/// `--defect` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DefectArg {
    /// A correct request.
    None,
    /// ImportMPxN is not the device's.
    WrongMpxn,
    /// Sent as another organisation (not the registered supplier).
    WrongMpid,
    /// Signed with the supplier DS (OU 02) key.
    WrongRole,
    /// Signed presenting an expired XML Sign certificate.
    Expired,
}

/// Run an `ecos sim` subcommand.
pub fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Device {
            commands,
            fixtures,
            at,
            tick,
            seed,
        } => device(&commands, &fixtures, at, tick, seed),
        SimCommand::Request {
            pki_spec,
            org,
            device,
            counter,
            mpxn,
            execute_at,
            cancel,
            no_time_checks,
            defect,
            defect_value,
            submit,
            out,
        } => {
            let spec = load_spec(pki_spec.as_deref())?;
            let pki = TestPki::generate(&spec)?;
            let me = SupplierOrg::from_test_pki(&pki, org)?;
            let defect = match defect {
                DefectArg::None => Defect::None,
                DefectArg::WrongMpxn => Defect::WrongMpxn(
                    defect_value.context("--defect wrong-mpxn needs --defect-value MPXN")?,
                ),
                DefectArg::WrongMpid => {
                    let other: Eui64 = defect_value
                        .context("--defect wrong-mpid needs --defect-value ORG-EUI")?
                        .parse()?;
                    Defect::WrongMpid(Box::new(SupplierOrg::from_test_pki(&pki, other)?))
                }
                DefectArg::WrongRole => Defect::WrongRole,
                DefectArg::Expired => {
                    Defect::ExpiredCertificate(Box::new(expired_xml_sign(&spec, org)?))
                }
            };
            let execution = match (execute_at, cancel) {
                (Some(t), _) => Execution::FutureDated(t),
                (None, true) => Execution::Cancellation,
                (None, false) => Execution::Immediate,
            };
            let xml = signed_request(
                &me,
                &RequestSpec {
                    device,
                    counter,
                    mpxn,
                    execution,
                    apply_time_based_cpv_checks: !no_time_checks,
                    command_variant: 1,
                },
                &defect,
            )?;
            if let Some(base) = submit {
                let rt = tokio::runtime::Runtime::new()?;
                let ans = rt.block_on(SupplierClient::new(&base)?.submit(xml))?;
                eprintln!("HTTP {}", ans.status);
                println!("{}", String::from_utf8_lossy(&ans.body));
                if ans.status >= 400 {
                    bail!("the server answered HTTP {}", ans.status);
                }
            } else if let Some(p) = out {
                std::fs::write(&p, &xml).with_context(|| format!("writing {}", p.display()))?;
            } else {
                println!("{}", String::from_utf8_lossy(&xml));
            }
            Ok(())
        }
        SimCommand::Migrate {
            devices,
            inventory,
            wan,
            rounds,
            pki_spec,
            key_seed,
            speed,
        } => migrate(devices, inventory, wan, rounds, pki_spec, key_seed, speed),
    }
}

fn load_spec(p: Option<&Path>) -> anyhow::Result<TestPkiSpec> {
    Ok(match p {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{} is not a test-PKI spec", p.display()))?,
        None => TestPkiSpec::demo(),
    })
}

fn hex_or_binary(raw: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !text.is_empty() && text.iter().all(u8::is_ascii_hexdigit) {
        if let Ok(b) = hex::decode(&text) {
            return b;
        }
    }
    raw.to_vec()
}

fn cells_json(d: &ecos_sim::Device) -> Value {
    let mut m = serde_json::Map::new();
    for c in CellId::ALL {
        if let Some(a) = d.cell(c) {
            m.insert(
                format!("{c:?}"),
                json!({"sui": a.sui.to_compact(), "ski": hex::encode_upper(&a.ski)}),
            );
        }
    }
    Value::Object(m)
}

fn message_json(bytes: &[u8]) -> Value {
    match Message::decode(bytes) {
        Ok(m) => json!({"hex": hex::encode_upper(bytes), "header": m.frame.header, "body": m.body}),
        Err(e) => json!({"hex": hex::encode_upper(bytes), "decode_error": e.to_string()}),
    }
}

fn device(
    commands: &[PathBuf],
    fixtures: &Path,
    at: jiff::Timestamp,
    tick: Option<jiff::Timestamp>,
    seed: u64,
) -> anyhow::Result<()> {
    let mut r = reference_esme(fixtures, seed)
        .with_context(|| format!("loading the reference ESME from {}", fixtures.display()))?;
    let mut out = Vec::new();
    for p in commands {
        let raw = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let bytes = hex_or_binary(&raw);
        let v = match r
            .device
            .handle(&bytes, r.ds.as_ref(), r.ka.as_ref(), &r.context, at, None)
        {
            Ok(h) => json!({
                "command": p.display().to_string(),
                "accepted": true,
                "held": h.held,
                "cancelled": h.cancelled,
                "response": message_json(&h.response),
            }),
            Err(e) => json!({
                "command": p.display().to_string(),
                "accepted": false,
                "refused": e.to_string(),
            }),
        };
        out.push(v);
    }
    if let Some(t) = tick {
        if let Some(a) = r.device.tick(r.ds.as_ref(), &r.context, t, None)? {
            out.push(json!({"tick": t.to_string(), "alert": message_json(&a)}));
        } else {
            out.push(json!({"tick": t.to_string(), "alert": null}));
        }
    }
    let doc = json!({
        "device": r.device.eui().to_compact(),
        "device_ds_public_key": hex::encode_upper(r.ds.public_key().as_bytes()),
        "results": out,
        "cells": cells_json(&r.device),
        "transitional_cos_counter": r.device.counter(5),
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn migrate(
    devices: u64,
    inventory: Option<PathBuf>,
    wan: Option<PathBuf>,
    rounds: u32,
    pki_spec: Option<PathBuf>,
    key_seed: u64,
    speed: f64,
) -> anyhow::Result<()> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed must be a positive number, not {speed}");
    }
    let spec = load_spec(pki_spec.as_deref())?;
    let pki = TestPki::generate(&spec)?;
    let supplier = spec
        .suppliers
        .first()
        .map(|s| s.eui)
        .context("the test-PKI spec has no supplier")?;
    let cfg: WanConfig = match &wan {
        None => WanConfig::default(),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            if p.extension().is_some_and(|e| e == "toml") {
                toml::from_str(&text).with_context(|| format!("{}", p.display()))?
            } else {
                serde_json::from_str(&text).with_context(|| format!("{}", p.display()))?
            }
        }
    };
    let keys = KeySource::Seeded(SeededKeys { seed: key_seed });
    let ctx = Arc::new(DeviceContext::new(pki.trust_store(), PathPolicy::default()));
    let fleet = Arc::new(Fleet::new(ctx, keys.clone()));
    let templates = Templates::from_test_pki(&pki, supplier)?;
    let base = Eui64::from_u64(0x00DB_0000_0000_0000);
    let euis: Vec<Eui64> = match &inventory {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            fleet.load_inventory(&text, &templates)?;
            let mut v = Vec::new();
            for line in text.lines().skip(1) {
                if let Some(Ok(e)) = line.split(',').next().map(str::parse::<Eui64>) {
                    if fleet.with_device(e, |_| ()).is_some() {
                        v.push(e);
                    }
                }
            }
            v
        }
        None => {
            fleet.generate(&templates, base, devices, DeviceKind::Esme, 0);
            (0..devices)
                .map(|i| Eui64::from_u64(base.to_u64() + i))
                .collect()
        }
    };
    let head = HeadEnd {
        cos: Arc::new(pki.tcos().signer()?),
        cos_eui: pki
            .tcos()
            .cert
            .eui()
            .context("TCoS certificate without EUI")?,
        acb: Arc::new(pki.acb_ka().key_agreement()?),
        keys,
    };
    let ecos = pki.ecos().cert.clone();
    let path = vec![pki.issuing_ca().cert.clone()];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async move {
        let start = jiff::Timestamp::now();
        let (wan, mut rx) = SimWan::start(fleet.clone(), cfg, SimClock::accelerated(start, speed))?;
        let mut migrated = std::collections::HashSet::new();
        let mut statuses = std::collections::BTreeMap::<u32, u64>::new();
        let mut counter = 1u64;
        for round in 0..rounds {
            for &e in euis.iter().filter(|e| !migrated.contains(*e)) {
                let cmd = head.trans_cos_by_trans_cos(e, counter, &ecos, &path, None)?;
                counter += 1;
                wan.send(e, cmd)?;
            }
            while let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_secs_f64(300.0 / speed), rx.recv()).await
            {
                if let Ok(msg) = Message::decode(&m.bytes) {
                    if let ecos_gbcs::Body::Response(r) = msg.body {
                        for o in r
                            .execution_outcome
                            .iter()
                            .flat_map(|x| &x.replacement_outcomes)
                        {
                            *statuses.entry(o.status.0).or_default() += 1;
                            if o.status.0 == 0 {
                                migrated.insert(m.device);
                            }
                        }
                    }
                }
            }
            eprintln!(
                "round {}: {} of {} migrated (virtual time {:?})",
                round + 1,
                migrated.len(),
                euis.len(),
                wan.clock().elapsed()
            );
        }
        anyhow::Ok(json!({
            "devices": euis.len(),
            "migrated": migrated.len(),
            "statuses": statuses,
            "wan": wan.stats(),
            "virtual_seconds": wan.clock().elapsed().as_secs_f64(),
        }))
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
