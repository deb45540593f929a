//! What the ecos-party integration tests share: the demo PKI (generated
//! once per test binary), the instant the tests run at, a SQLite store in a
//! temporary directory with the demo data, and a transport that records.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use ecos_party::DeviceTransport;
use ecos_party::api::BoxFuture;
use ecos_party::demo;
use ecos_smki::{Eui64, TestPki};
use ecos_store::{Store, StoreConfig, StoreLocation};
use jiff::Timestamp;

/// The demo PKI (seed 7), generated once per test binary.
pub fn pki() -> Arc<TestPki> {
    static PKI: OnceLock<Arc<TestPki>> = OnceLock::new();
    PKI.get_or_init(|| Arc::new(demo::pki(7).unwrap())).clone()
}

/// The instant the tests receive requests at.
pub fn at() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// A SQLite store in `dir` with GBCS counters from `counter_floor`.
pub async fn open_store(dir: &Path, counter_floor: u64) -> Store {
    Store::open(
        &StoreLocation::sqlite_in_dir(dir),
        StoreConfig {
            gbcs_counter_floor: counter_floor,
            ..StoreConfig::default()
        },
    )
    .await
    .unwrap()
}

/// A fresh temporary directory with a SQLite store holding the demo data.
pub async fn demo_store(counter_floor: u64) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), counter_floor).await;
    demo::load(&store, &pki()).await.unwrap();
    (store, dir)
}

/// A device transport that records what is sent and accepts it.
#[derive(Debug, Default)]
pub struct Recorder(pub Mutex<Vec<(Eui64, Vec<u8>)>>);

impl DeviceTransport for Recorder {
    fn send<'a>(&'a self, device: Eui64, message: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        self.0.lock().unwrap().push((device, message));
        Box::pin(async { Ok(()) })
    }
}

impl Recorder {
    /// How many messages were sent.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}
