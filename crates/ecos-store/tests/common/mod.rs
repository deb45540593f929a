//! The harness of the shared suite: every test body runs on SQLite and on PostgreSQL.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use ecos_store::{ImportMode, ImportOptions, ImportProgress, Store, StoreConfig, StoreLocation};

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(
        &StoreLocation::sqlite_in_dir(dir.path()),
        StoreConfig::default(),
    )
    .await
    .expect("open SQLite store");
    (store, dir)
}

static N: AtomicU64 = AtomicU64::new(0);

/// A fresh PostgreSQL store in its own schema, or `None` (with a message) when
/// `ECOS_TEST_POSTGRES_URL` is unset.
pub async fn pg_store(test: &str) -> Option<Store> {
    let Ok(url) = std::env::var("ECOS_TEST_POSTGRES_URL") else {
        eprintln!("skipping {test} on PostgreSQL: ECOS_TEST_POSTGRES_URL is not set");
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    let store = Store::open(
        &StoreLocation::Postgres {
            url,
            schema: Some(schema),
        },
        StoreConfig::default(),
    )
    .await
    .expect("open PostgreSQL store");
    Some(store)
}

/// Define each test twice: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (s, _dir) = $crate::common::sqlite_store().await;
                    super::$name(s).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(s) = $crate::common::pg_store(stringify!($name)).await else { return };
                    super::$name(s.clone()).await;
                    s.close().await;
                }
            )*
        }
    };
}

/// Import registration text with a file id and mode.
pub async fn import_reg(
    s: &Store,
    id: &str,
    mode: ImportMode,
    text: &str,
) -> ecos_store::Result<ecos_store::ImportSummary> {
    s.import_registration(
        text.as_bytes(),
        &ImportOptions::new(id, mode),
        &mut |_: ImportProgress| {},
    )
    .await
}

/// A date.
pub fn d(s: &str) -> jiff::civil::Date {
    s.parse().expect("date")
}

/// An MPxN (unchecked).
pub fn m(s: &str) -> ecos_store::Mpxn {
    ecos_store::Mpxn::parse_unchecked(s).expect("mpxn")
}

/// The DER key-agreement and digital-signing certificates of a device
/// minted by the test PKI (the inventory import reads their keys).
pub fn device_certs() -> &'static (Vec<u8>, Vec<u8>) {
    static CERTS: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    CERTS.get_or_init(|| {
        let pki = ecos_smki::TestPki::generate(&ecos_smki::TestPkiSpec::demo()).expect("test PKI");
        let d = pki
            .mint_device(ecos_smki::Eui64::from_u64(0x00DB_1234_5678_90A0))
            .expect("device");
        (d.ka.cert.der().to_vec(), d.ds.cert.der().to_vec())
    })
}

/// [`device_certs`] in standard base64, as the inventory format has them.
pub fn device_certs_b64() -> (String, String) {
    use base64::Engine as _;
    let (ka, ds) = device_certs();
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    (b64(ka), b64(ds))
}
