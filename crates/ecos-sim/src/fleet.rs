//! Many devices in memory, shared by async tasks.
//!
//! Devices are sharded by EUI over mutex-protected maps. Cells are
//! `Arc<Anchor>`s shared with the template the devices were made from, and
//! keys are derived per call ([`KeySource`]), so a device costs its
//! [`Device`] struct and a map slot (see [`Fleet::approx_bytes_per_device`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use ecos_smki::testpki::TestPki;
use ecos_smki::{Eui64, P256PublicKey};
use jiff::Timestamp;

use crate::anchor::{Anchor, CellId};
use crate::device::{Device, DeviceContext, DeviceKind, Fault, Handled};
use crate::error::{Rejection, SimError};
use crate::keys::{DeviceKeys, SeededKeys};

const SHARDS: usize = 64;

/// Where device keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Derived from a seed and the EUI (fast; no certificates).
    Seeded(SeededKeys),
    /// Minted by the test PKI from its seed and the EUI: the same keys and
    /// certificates the PKI writes for the store's inventory (slower: each
    /// call issues the two device certificates again).
    TestPki(Arc<TestPki>),
    /// Given up front, by EUI (benchmarks: minted once, no per-command cost).
    Fixed(Arc<std::collections::HashMap<Eui64, DeviceKeys>>),
}

impl KeySource {
    /// The device's keys.
    pub fn keys(&self, eui: Eui64) -> Result<DeviceKeys, SimError> {
        match self {
            KeySource::Seeded(s) => s.keys(eui),
            KeySource::TestPki(pki) => {
                let d = pki
                    .mint_device(eui)
                    .map_err(|e| SimError::Key(format!("minting {eui}: {e}")))?;
                let ds =
                    d.ds.signer()
                        .map_err(|e| SimError::Key(format!("DS of {eui}: {e}")))?;
                let ka =
                    d.ka.key_agreement()
                        .map_err(|e| SimError::Key(format!("KA of {eui}: {e}")))?;
                Ok(DeviceKeys {
                    ds: Arc::new(ds),
                    ka: Arc::new(ka),
                })
            }
            KeySource::Fixed(m) => m.get(&eui).cloned().ok_or(SimError::UnknownDevice(eui)),
        }
    }

    /// The device's KA public key (for the ACB side).
    pub fn ka_public(&self, eui: Eui64) -> Result<P256PublicKey, SimError> {
        match self {
            KeySource::Seeded(s) => s.ka_public(eui),
            KeySource::TestPki(_) | KeySource::Fixed(_) => {
                Ok(self.keys(eui)?.ka.public_key().clone())
            }
        }
    }

    /// The device's DS public key (verifies its responses).
    pub fn ds_public(&self, eui: Eui64) -> Result<P256PublicKey, SimError> {
        match self {
            KeySource::Seeded(s) => s.ds_public(eui),
            KeySource::TestPki(_) | KeySource::Fixed(_) => {
                Ok(self.keys(eui)?.ds.public_key().clone())
            }
        }
    }
}

/// Which CoS credential a new device holds in its role-5 cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CosCredential {
    /// The transitional CoS certificate.
    Transitional,
    /// The enduring CoS certificate.
    Enduring,
}

/// Devices as manufactured: one template per CoS credential. Devices made
/// from a template share its anchors.
#[derive(Debug, Clone)]
pub struct Templates {
    /// Holding the TCoS anchor.
    pub transitional: Device,
    /// Holding the ECoS anchor.
    pub enduring: Device,
}

impl Templates {
    /// Templates from a test PKI: root, supplier `supplier` (DS, KA, PP-KA),
    /// ACB KA, and TCoS or ECoS; first alert counter 1.
    pub fn from_test_pki(pki: &TestPki, supplier: Eui64) -> Result<Templates, SimError> {
        let anchor = |c: &ecos_smki::Certificate| -> Result<Arc<Anchor>, SimError> {
            Ok(Arc::new(Anchor::from_certificate(c.clone())?))
        };
        let org = pki
            .organisation(supplier)
            .ok_or_else(|| SimError::Config(format!("no supplier {supplier} in the test PKI")))?;
        let mut t = Device::new(Eui64([0; 8]), DeviceKind::Esme, 1);
        t.set_cell(CellId::Root, anchor(&pki.root().cert)?)
            .set_cell(CellId::SupplierDs, anchor(&org.ds.cert)?)
            .set_cell(CellId::SupplierKa, anchor(&org.ka.cert)?)
            .set_cell(CellId::SupplierPpKa, anchor(&org.pp_ka.cert)?)
            .set_cell(CellId::AcbKa, anchor(&pki.acb_ka().cert)?)
            .set_cell(CellId::TransCosDs, anchor(&pki.tcos().cert)?);
        let mut e = t.clone();
        e.set_cell(CellId::TransCosDs, anchor(&pki.ecos().cert)?);
        Ok(Templates {
            transitional: t,
            enduring: e,
        })
    }

    /// A new device of `kind` with `cos` from the matching template.
    pub fn make(&self, eui: Eui64, kind: DeviceKind, cos: CosCredential) -> Device {
        let t = match cos {
            CosCredential::Transitional => &self.transitional,
            CosCredential::Enduring => &self.enduring,
        };
        t.clone_as(eui, kind)
    }
}

/// Why the fleet could not run a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The device refused the command (no response on the WAN).
    #[error("device {0} refused the command: {1}")]
    Rejected(Eui64, Rejection),
    /// Something else (unknown device, key derivation).
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// A shard: its devices and the held future-dated commands by due time.
#[derive(Debug, Default)]
struct Shard {
    devices: HashMap<Eui64, Device>,
    due: BTreeSet<(Timestamp, Eui64)>,
}

/// A fleet of simulated devices.
#[derive(Debug)]
pub struct Fleet {
    shards: Vec<Mutex<Shard>>,
    context: Arc<DeviceContext>,
    keys: KeySource,
}

fn shard_of(eui: Eui64) -> usize {
    // EUIs are often sequential: mix the bits before taking the shard.
    let x = eui.to_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 58) as usize % SHARDS
}

impl Fleet {
    /// An empty fleet.
    pub fn new(context: Arc<DeviceContext>, keys: KeySource) -> Fleet {
        Fleet {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            context,
            keys,
        }
    }

    fn shard(&self, eui: Eui64) -> MutexGuard<'_, Shard> {
        match self.shards[shard_of(eui)].lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The shared device context.
    pub fn context(&self) -> &Arc<DeviceContext> {
        &self.context
    }

    /// The key source.
    pub fn keys(&self) -> &KeySource {
        &self.keys
    }

    /// Add (or replace) a device.
    pub fn insert(&self, device: Device) {
        let mut s = self.shard(device.eui());
        s.devices.insert(device.eui(), device);
    }

    /// `n` devices with EUIs `first`, `first + 1`, …, made from the
    /// transitional template (a share `enduring_every` of them, every k-th,
    /// from the enduring one; 0 = none).
    pub fn generate(
        &self,
        templates: &Templates,
        first: Eui64,
        n: u64,
        kind: DeviceKind,
        enduring_every: u64,
    ) {
        let base = first.to_u64();
        for i in 0..n {
            let cos = if enduring_every != 0 && i % enduring_every == enduring_every - 1 {
                CosCredential::Enduring
            } else {
                CosCredential::Transitional
            };
            self.insert(templates.make(Eui64::from_u64(base.wrapping_add(i)), kind, cos));
        }
    }

    /// Load devices from an inventory CSV in the `ecos-store` format
    /// (header line; `device_eui` required; `device_type` `esme`/`gsme`
    /// become devices, other types are skipped; `cos_credential`
    /// `transitional` (default) or `enduring`). Returns the number of
    /// devices added.
    pub fn load_inventory(&self, text: &str, templates: &Templates) -> Result<usize, SimError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(SimError::Inventory {
                line: 1,
                detail: "empty file: no header".into(),
            });
        };
        let cols = split_csv(header).map_err(|d| SimError::Inventory { line: 1, detail: d })?;
        let find = |name: &str| cols.iter().position(|c| c.trim() == name);
        let eui_col = find("device_eui").ok_or_else(|| SimError::Inventory {
            line: 1,
            detail: "no device_eui column".into(),
        })?;
        let type_col = find("device_type");
        let cos_col = find("cos_credential");
        let mut added = 0;
        for (i, line) in lines {
            let lineno = i + 1;
            let bad = |detail: String| SimError::Inventory {
                line: lineno,
                detail,
            };
            let f = split_csv(line).map_err(bad)?;
            if f.len() != cols.len() {
                return Err(bad(format!(
                    "{} fields, the header has {}",
                    f.len(),
                    cols.len()
                )));
            }
            let eui: Eui64 = f[eui_col]
                .trim()
                .parse()
                .map_err(|e| bad(format!("device_eui {:?}: {e}", f[eui_col])))?;
            let kind = match type_col.map(|c| f[c].trim()) {
                Some("esme") | None | Some("") => DeviceKind::Esme,
                Some("gsme") => DeviceKind::Gsme,
                Some("chf" | "gpf" | "ppmid" | "hcalcs" | "ihd" | "sapc") => continue,
                Some(other) => return Err(bad(format!("device_type {other:?} is unknown"))),
            };
            let cos = match cos_col.map(|c| f[c].trim()) {
                Some("transitional") | Some("") | None => CosCredential::Transitional,
                Some("enduring") => CosCredential::Enduring,
                Some(other) => return Err(bad(format!("cos_credential {other:?} is unknown"))),
            };
            self.insert(templates.make(eui, kind, cos));
            added += 1;
        }
        Ok(added)
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.devices.len(),
                Err(p) => p.into_inner().devices.len(),
            })
            .sum()
    }

    /// Whether the fleet is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read a device.
    pub fn with_device<R>(&self, eui: Eui64, f: impl FnOnce(&Device) -> R) -> Option<R> {
        self.shard(eui).devices.get(&eui).map(f)
    }

    /// Run a command through a device at `now`.
    pub fn handle(
        &self,
        eui: Eui64,
        command: &[u8],
        now: Timestamp,
        fault: Option<Fault>,
    ) -> Result<Handled, FleetError> {
        // Key derivation is the expensive part: do it outside the lock.
        let keys = self.keys.keys(eui)?;
        let mut s = self.shard(eui);
        let shard = &mut *s;
        let dev = shard
            .devices
            .get_mut(&eui)
            .ok_or(SimError::UnknownDevice(eui))?;
        let before = dev.pending().map(|p| p.at);
        let h = dev
            .handle(
                command,
                keys.ds.as_ref(),
                keys.ka.as_ref(),
                &self.context,
                now,
                fault,
            )
            .map_err(|r| FleetError::Rejected(eui, r))?;
        let after = dev.pending().map(|p| p.at);
        if before != after {
            if let Some(t) = before {
                shard.due.remove(&(t, eui));
            }
            if let Some(t) = after {
                shard.due.insert((t, eui));
            }
        }
        Ok(h)
    }

    /// The earliest time a held command falls due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.shards
            .iter()
            .filter_map(|s| match s.lock() {
                Ok(g) => g.due.first().map(|(t, _)| *t),
                Err(p) => p.into_inner().due.first().map(|(t, _)| *t),
            })
            .min()
    }

    /// Execute every held command due at `now`; the signed 0x00CB alerts
    /// with their devices. `fault` picks a fault per device and
    /// replacement mode of the held command.
    pub fn tick(
        &self,
        now: Timestamp,
        mut fault: impl FnMut(Eui64, u32) -> Option<Fault>,
    ) -> Vec<(Eui64, Result<Vec<u8>, FleetError>)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let due: Vec<(Timestamp, Eui64)> = {
                let g = match shard.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                g.due.range(..=(now, Eui64([0xFF; 8]))).copied().collect()
            };
            for (t, eui) in due {
                let keys = match self.keys.keys(eui) {
                    Ok(k) => k,
                    Err(e) => {
                        out.push((eui, Err(e.into())));
                        continue;
                    }
                };
                let mut g = match shard.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                g.due.remove(&(t, eui));
                let Some(dev) = g.devices.get_mut(&eui) else {
                    continue;
                };
                let f = dev
                    .pending()
                    .and_then(|p| fault(eui, p.content.control.mode.0));
                match dev.tick(keys.ds.as_ref(), &self.context, now, f) {
                    Ok(Some(alert)) => out.push((eui, Ok(alert))),
                    Ok(None) => {}
                    Err(r) => out.push((eui, Err(FleetError::Rejected(eui, r)))),
                }
            }
        }
        out
    }

    /// Estimated bytes per device: the device struct and its map slot
    /// (hashbrown: key, value, one control byte, at 7/8 load). Shared
    /// anchors are not counted; held commands add to it.
    pub fn approx_bytes_per_device() -> usize {
        let slot = std::mem::size_of::<(Eui64, Device)>() + 1;
        slot * 8 / 7
    }
}

/// Split one CSV line: comma-separated, RFC 4180 double quotes.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
        } else if c == '"' {
            return Err("a quote inside an unquoted field".into());
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_splits_quotes() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\",").unwrap(),
            ["a", "b,c", "d\"e", ""]
        );
        assert!(split_csv("a,\"b").is_err());
        assert!(split_csv("a,b\"c").is_err());
    }
}
