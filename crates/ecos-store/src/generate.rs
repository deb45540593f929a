//! Consistent synthetic data sets for demos, tests and benchmarks.
//!
//! A data set is deterministic from its seed. Each premises has a communications hub (CHF),
//! an ESME on an MPAN, a gas proxy (GPF) and a GSME on an MPRN; every MPxN has a supplier
//! history of one to three periods, the last one open, with suppliers taken from the
//! service users (the first two are `ACEE`/`ACG` at `90-B3-D5-1F-30-03-00-00` and
//! `BCEE`/`BCG` at `90-B3-D5-1F-30-01-00-00`, the reference test EUIs). All MPANs and MPRNs
//! carry valid check digits. Device certificates are left empty (the format allows it).

use std::io::Write;
use std::path::{Path, PathBuf};

use ecos_smki::Eui64;
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::csv::quote;
use crate::error::{Result, StoreError};
use crate::mpxn::Mpxn;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Number of inventory devices (four per premises; the last premises may be partial).
    pub devices: u64,
    /// Number of service users (suppliers), at least 2.
    pub suppliers: u32,
    /// The seed: the same spec gives the same files.
    pub seed: u64,
}

impl SyntheticSpec {
    /// A spec with `devices` devices, 12 suppliers and the given seed.
    pub fn new(devices: u64, seed: u64) -> Self {
        SyntheticSpec {
            devices,
            suppliers: 12,
            seed,
        }
    }
}

/// The files written and what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSet {
    /// `regdata.csv`.
    pub registration_file: PathBuf,
    /// `inventory.csv`.
    pub inventory_file: PathBuf,
    /// `service-users.csv`.
    pub service_users_file: PathBuf,
    /// Registration rows.
    pub registration_rows: u64,
    /// Distinct MPxNs.
    pub mpxns: u64,
    /// Devices.
    pub devices: u64,
    /// Service users.
    pub service_users: u64,
}

/// Most premises the MPRN numbering supports (8-digit bodies).
pub const MAX_PREMISES: u64 = 8_999_999;

struct Supplier {
    eui: Eui64,
    name: String,
    elec: String,
    gas: String,
}

fn suppliers(n: u32) -> Vec<Supplier> {
    let n = n.max(2);
    (0..n)
        .map(|i| {
            let (eui, elec, gas, name) = match i {
                0 => (
                    0x90B3_D51F_3003_0000u64,
                    "ACEE".to_string(),
                    "ACG".to_string(),
                    "Gaining Energy",
                ),
                1 => (
                    0x90B3_D51F_3001_0000u64,
                    "BCEE".to_string(),
                    "BCG".to_string(),
                    "Losing Energy",
                ),
                _ => (
                    0x90B3_D51F_3004_0000u64 + u64::from(i),
                    format!("S{:03}", i % 1000),
                    format!("G{:02}", i % 100),
                    "Synthetic Supply",
                ),
            };
            Supplier {
                eui: Eui64::from_u64(eui),
                name: if i < 2 {
                    name.to_string()
                } else {
                    format!("{name} {i}")
                },
                elec,
                gas,
            }
        })
        .collect()
}

/// The MPAN of premises `idx` (valid check digit, unique per index below 10^10).
pub fn premises_mpan(idx: u64) -> Option<Mpxn> {
    if idx >= 10_000_000_000 {
        return None;
    }
    Mpxn::mpan_with_check_digit(&format!("{:02}{:010}", 10 + idx % 14, idx))
}

/// The MPRN of premises `idx` (valid check digits, unique per index up to [`MAX_PREMISES`]).
pub fn premises_mprn(idx: u64) -> Option<Mpxn> {
    if idx > MAX_PREMISES {
        return None;
    }
    let decade = 10_000_000 + idx * 10;
    // Within a decade the check value takes ten distinct values mod 11: at most one is 10.
    (0..10).find_map(|k| Mpxn::mprn_with_check_digits(&(decade + k).to_string()))
}

fn numbering(idx: u64) -> Result<(Mpxn, Mpxn)> {
    match (premises_mpan(idx), premises_mprn(idx)) {
        (Some(a), Some(g)) => Ok((a, g)),
        _ => Err(StoreError::Invalid(format!(
            "premises number {idx} is beyond the generator's numbering"
        ))),
    }
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 { 0 } else { rng.next_u64() % n }
}

/// One MPxN's supplier history: (supplier index, from, to).
fn history(rng: &mut ChaCha8Rng, nsup: u64, first: Option<u64>) -> Vec<(u64, Date, Option<Date>)> {
    let base = Date::constant(2015, 1, 1);
    let periods = 1 + below(rng, 3);
    let mut from = base
        .checked_add((below(rng, 2000) as i64).days())
        .unwrap_or(base);
    let mut sup = first.unwrap_or_else(|| below(rng, nsup));
    let mut out = Vec::new();
    for p in 0..periods {
        if p + 1 == periods {
            out.push((sup, from, None));
        } else {
            let len = 200 + below(rng, 900) as i64;
            let to = from.checked_add((len - 1).days()).unwrap_or(from);
            out.push((sup, from, Some(to)));
            // Sometimes a gap of a few days before the next supplier.
            let gap = if below(rng, 10) == 0 {
                1 + below(rng, 20) as i64
            } else {
                1
            };
            from = to.checked_add(gap.days()).unwrap_or(to);
            sup = (sup + 1 + below(rng, nsup - 1)) % nsup;
        }
    }
    out
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

const REGIONS: [&str; 3] = ["north", "central", "south"];
const FIRMWARE: [&str; 4] = ["1.0.3", "1.2.0", "2.0.1", "2.1.0"];

/// Write `regdata.csv`, `inventory.csv` and `service-users.csv` into `dir`.
pub fn write_synthetic(dir: &Path, spec: &SyntheticSpec) -> Result<GeneratedSet> {
    let premises = spec.devices.div_ceil(4);
    if premises > MAX_PREMISES {
        return Err(StoreError::Invalid(format!(
            "{} devices is more than this generator numbers ({} premises of 4 devices)",
            spec.devices, MAX_PREMISES
        )));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let sups = suppliers(spec.suppliers);
    let nsup = sups.len() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);

    let su_path = dir.join("service-users.csv");
    let mut su = Vec::new();
    su.extend_from_slice(b"org_eui,name,roles,mpids,response_endpoint\n");
    for s in &sups {
        let ep = format!(
            "https://{}.example/duis",
            s.eui.to_compact().to_ascii_lowercase()
        );
        su.extend_from_slice(
            format!(
                "{},{},IS GS,{} {},{}\n",
                s.eui,
                quote(&s.name),
                s.elec,
                s.gas,
                ep
            )
            .as_bytes(),
        );
    }
    std::fs::write(&su_path, su).map_err(io_err(&su_path))?;

    let reg_path = dir.join("regdata.csv");
    let inv_path = dir.join("inventory.csv");
    let mut reg = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&reg_path).map_err(io_err(&reg_path))?,
    );
    let mut inv = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&inv_path).map_err(io_err(&inv_path))?,
    );
    reg.write_all(b"mpxn,supplier_mpid,effective_from,effective_to\n")
        .map_err(io_err(&reg_path))?;
    inv.write_all(
        b"device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,comms_hub_eui,csp_region,firmware_version,last_contact\n",
    )
    .map_err(io_err(&inv_path))?;
    let now = Timestamp::constant(1_767_225_600, 0); // 2026-01-01T00:00:00Z, fixed for determinism
    let mut rows = 0u64;
    let mut mpxns = 0u64;
    let mut devices = 0u64;
    for idx in 0..premises {
        let (mpan, mprn) = numbering(idx)?;
        let elec = history(&mut rng, nsup, None);
        let dual = below(&mut rng, 3) != 0;
        let gas = history(&mut rng, nsup, dual.then(|| elec[0].0));
        for (m, h, gasf) in [(&mpan, &elec, false), (&mprn, &gas, true)] {
            mpxns += 1;
            for (s, from, to) in h {
                let mpid = if gasf {
                    &sups[*s as usize].gas
                } else {
                    &sups[*s as usize].elec
                };
                let to = to.map(|t| t.to_string()).unwrap_or_default();
                writeln!(reg, "{m},{mpid},{from},{to}").map_err(io_err(&reg_path))?;
                rows += 1;
            }
        }
        let region = REGIONS[below(&mut rng, 3) as usize];
        let hub = Eui64::from_u64(0x00DB_1200_0000_0000 + idx * 4);
        let status = match below(&mut rng, 100) {
            0..=89 => "commissioned",
            90..=94 => "installed-not-commissioned",
            95..=97 => "suspended",
            _ => "decommissioned",
        };
        let cos = if below(&mut rng, 10) < 7 {
            "transitional"
        } else {
            "enduring"
        };
        let fw = FIRMWARE[below(&mut rng, FIRMWARE.len() as u64) as usize];
        let contact = now
            .checked_sub((below(&mut rng, 86_400 * 30) as i64).seconds())
            .unwrap_or(now);
        let members: [(u64, &str, Option<&Mpxn>); 4] = [
            (0, "chf", None),
            (1, "esme", Some(&mpan)),
            (2, "gpf", None),
            (3, "gsme", Some(&mprn)),
        ];
        for (k, ty, m) in members {
            if devices == spec.devices {
                break;
            }
            let eui = Eui64::from_u64(0x00DB_1200_0000_0000 + idx * 4 + k);
            let (m, c, h) = match m {
                Some(m) => (m.as_str(), cos, hub.to_string()),
                None if ty == "gpf" => ("", "", hub.to_string()),
                None => ("", "", String::new()),
            };
            writeln!(
                inv,
                "{eui},{ty},{status},{m},{c},,,{h},{region},{fw},{contact}"
            )
            .map_err(io_err(&inv_path))?;
            devices += 1;
        }
    }
    reg.flush().map_err(io_err(&reg_path))?;
    inv.flush().map_err(io_err(&inv_path))?;
    Ok(GeneratedSet {
        registration_file: reg_path,
        inventory_file: inv_path,
        service_users_file: su_path,
        registration_rows: rows,
        mpxns,
        devices,
        service_users: nsup,
    })
}

/// A registration file of about `rows` rows (MPANs only, one to three periods each), in memory.
/// Returns the file and the MPANs it lists. Used by benchmarks.
pub fn registration_file(rows: u64, seed: u64) -> Result<(Vec<u8>, Vec<Mpxn>)> {
    let sups = suppliers(12);
    let nsup = sups.len() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(rows as usize * 42 + 64);
    out.extend_from_slice(b"mpxn,supplier_mpid,effective_from,effective_to\n");
    let mut n = 0u64;
    let mut keys = Vec::new();
    let mut idx = 0u64;
    while n < rows {
        let (m, _) = numbering(idx)?;
        idx += 1;
        for (s, from, to) in history(&mut rng, nsup, None) {
            let to = to.map(|t| t.to_string()).unwrap_or_default();
            let _ = writeln!(out, "{m},{},{from},{to}", sups[s as usize].elec);
            n += 1;
        }
        keys.push(m);
    }
    Ok((out, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for idx in (0..2000).chain([MAX_PREMISES - 1, MAX_PREMISES]) {
            let (a, g) = numbering(idx).unwrap();
            assert!(a.check_digit_valid() && g.check_digit_valid(), "{a} {g}");
            assert_eq!(a.as_str().len(), 13);
            assert!(g.as_str().len() <= 10);
            assert!(seen.insert(a.to_string()) && seen.insert(g.to_string()));
        }
    }

    #[test]
    fn deterministic_and_consistent() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let a = write_synthetic(d1.path(), &SyntheticSpec::new(42, 7)).unwrap();
        let b = write_synthetic(d2.path(), &SyntheticSpec::new(42, 7)).unwrap();
        assert_eq!(a.devices, 42);
        assert_eq!(a.mpxns, 22, "11 premises, one MPAN and one MPRN each");
        for (x, y) in [
            (&a.registration_file, &b.registration_file),
            (&a.inventory_file, &b.inventory_file),
        ] {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
        assert!(premises_mprn(MAX_PREMISES + 1).is_none());
        let (f, keys) = registration_file(1000, 1).unwrap();
        assert!(keys.len() >= 334);
        let lines = f.iter().filter(|&&c| c == b'\n').count();
        assert!((1001..=1003).contains(&lines));
    }
}
