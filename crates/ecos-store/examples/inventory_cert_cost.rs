//! What it would cost to validate an inventory row's device certificates
//! properly, against the current check (base64 + a SEQUENCE tag) and the
//! whole row's import, in the same run.
//!
//! usage: `inventory_cert_cost [ROWS] [ROUNDS]` (defaults 20000 and 5). An
//! inventory of ROWS devices, each with a KA and a DS certificate (64
//! devices minted by the test PKI, cycled), is checked per row four ways:
//! `current` (base64 + tag, as the import does), `key_of` (base64 +
//! `Certificate::public_key_of` of both, the key-agreement key being the
//! one the party derives the MAC secret from), `from_der` (base64 + the
//! full `Certificate::from_der` of both), and `import` (the whole
//! `Store::import_inventory` into a fresh SQLite store, as the store runs
//! it: since the import reads both keys, `key_of` is part of it; before,
//! `current` was). Prints the median per row of each and the ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ecos_smki::{Certificate, Eui64, TestPki, TestPkiSpec};
use ecos_store::{ImportMode, ImportOptions, Store, StoreConfig, StoreLocation};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args
        .first()
        .map_or(Ok(20_000), |s| s.parse())
        .map_err(|e| format!("ROWS: {e}"))?;
    let rounds: usize = args
        .get(1)
        .map_or(Ok(5), |s| s.parse())
        .map_err(|e| format!("ROUNDS: {e}"))?;

    let pki = TestPki::generate(&TestPkiSpec::demo()).map_err(|e| e.to_string())?;
    let base = 0x00DB_1234_5600_0000u64;
    let euis: Vec<Eui64> = (0..64).map(|i| Eui64::from_u64(base + i)).collect();
    let devices = pki.mint_devices(&euis).map_err(|e| e.to_string())?;
    let certs: Vec<(String, String)> = devices
        .iter()
        .map(|d| {
            (
                STANDARD.encode(d.ka.cert.der()),
                STANDARD.encode(d.ds.cert.der()),
            )
        })
        .collect();
    let mut csv = String::from(
        "device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,comms_hub_eui,csp_region,firmware_version,last_contact\n",
    );
    let mut fields = Vec::with_capacity(rows);
    for i in 0..rows {
        let (ka, ds) = &certs[i % certs.len()];
        csv.push_str(&format!(
            "{},esme,commissioned,,enduring,{ka},{ds},,north,1.2.0,2024-05-01T10:00:00Z\n",
            Eui64::from_u64(base + 0x1_0000 + i as u64)
        ));
        fields.push((ka.as_str(), ds.as_str()));
    }
    eprintln!(
        "{rows} rows, {} bytes; certificates {} and {} bytes of DER",
        csv.len(),
        devices[0].ka.cert.der().len(),
        devices[0].ds.cert.der().len()
    );

    let decode = |s: &str| STANDARD.decode(s).map_err(|e| e.to_string());
    let current = |s: &str| -> Result<(), String> {
        let der = decode(s)?;
        (der.first() == Some(&0x30))
            .then_some(())
            .ok_or("tag".into())
    };
    let key_of = |s: &str| -> Result<(), String> {
        let der = decode(s)?;
        black_box(Certificate::public_key_of(&der).map_err(|e| e.to_string())?);
        Ok(())
    };
    let from_der = |s: &str| -> Result<(), String> {
        let der = decode(s)?;
        black_box(Certificate::from_der(&der).map_err(|e| e.to_string())?);
        Ok(())
    };
    let time_checks = |f: &dyn Fn(&str) -> Result<(), String>| -> Result<Duration, String> {
        let t = Instant::now();
        for (ka, ds) in &fields {
            f(ka)?;
            f(ds)?;
        }
        Ok(t.elapsed())
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let import = |round: usize| -> Result<Duration, String> {
        rt.block_on(async {
            let loc = StoreLocation::sqlite_in_dir(dir.path().join(format!("r{round}")));
            let s = Store::open(&loc, StoreConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let t = Instant::now();
            let sum = s
                .import_inventory(
                    csv.as_bytes(),
                    &ImportOptions::new("inv", ImportMode::Refresh),
                    &mut |_| {},
                )
                .await
                .map_err(|e| e.to_string())?;
            let dt = t.elapsed();
            if sum.rows != rows as u64 {
                return Err(format!("imported {} rows of {rows}", sum.rows));
            }
            s.close().await;
            Ok(dt)
        })
    };

    // Interleaved rounds: each way sees the same load.
    let (mut cur, mut key, mut full, mut imp) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        cur.push(time_checks(&current)?);
        key.push(time_checks(&key_of)?);
        full.push(time_checks(&from_der)?);
        imp.push(import(round)?);
    }
    let per_row = |v: Vec<Duration>| median(v).as_secs_f64() * 1e6 / rows as f64;
    let (cur, key, full, imp) = (per_row(cur), per_row(key), per_row(full), per_row(imp));
    println!("per row (median of {rounds} rounds, two certificates a row):");
    println!("  current check (base64 + tag)    {cur:8.2} us");
    println!(
        "  base64 + public_key_of          {key:8.2} us  ({:.1}x current)",
        key / cur
    );
    println!(
        "  base64 + from_der               {full:8.2} us  ({:.1}x current)",
        full / cur
    );
    println!("  whole import                    {imp:8.2} us");
    println!(
        "  beyond the current check, as a share of the import: key_of {:.1}%, from_der {:.1}%",
        (key - cur) / imp * 100.0,
        (full - cur) / imp * 100.0
    );
    Ok(())
}
