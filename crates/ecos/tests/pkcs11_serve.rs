//! `ecos serve` with its CoS and DSP signing keys in a PKCS#11 token
//! (SoftHSM2), as a process on loopback: the demo PKI's TCoS, ECoS and DSP
//! keys are imported into a fresh token, the configuration names them by
//! label (`keys.pkcs11`), and a signed 6.23 goes through end to end: the
//! simulated meter accepts the CS02b the token signed with the TCoS key, and
//! the DUIS response the supplier polls verifies with the DSP certificate.
//! A missing key label, an unprotected PIN file and a key file that group
//! or others can read stop the service with a message naming them.
//!
//! Skips with a message when SoftHSM2 (`softhsm2-util` and its module) is
//! absent (`apt-get install softhsm2`; `.ci/run` installs it).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecos_party::demo::{self, RequestSpec};

mod common;

const TOKEN: &str = "ecos-serve-test";
const PIN: &str = "87654321";

#[path = "../../ecos-pkcs11/tests/support/softhsm.rs"]
mod softhsm;

fn write_private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Start `ecos serve`; `Ok(base URL)` once it listens, `Err(stderr)` when it exits first.
fn serve(
    conf: &Path,
    config: &Path,
    data: &Path,
    log: &Path,
) -> Result<(std::process::Child, String), String> {
    let mut c = common::ecos();
    c.env("SOFTHSM2_CONF", conf)
        .args(["serve", "--simulate-devices", "--listen", "127.0.0.1:0"])
        .args(["--log-filter", "info", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log"));
    let mut child = c.spawn().expect("spawn ecos serve");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    match line.trim().strip_prefix("ecos: listening on ") {
        Some(base) => {
            let base = base.to_string();
            std::thread::spawn(move || {
                let mut sink = String::new();
                while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                    sink.clear();
                }
            });
            Ok((child, base))
        }
        None => {
            let _ = child.wait();
            Err(std::fs::read_to_string(log).unwrap_or_default())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_signs_with_keys_in_a_pkcs11_token() {
    if let Some(why) = softhsm::unavailable() {
        eprintln!("skipping the PKCS#11 serve test: {why}");
        return;
    }
    let module = softhsm::module().expect("module");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let pki_dir = data.join("pki");
    let pki = demo::pki(1).expect("PKI");
    pki.write_to(&pki_dir).expect("write PKI");
    let store = ecos_store::Store::open(
        &ecos_store::StoreLocation::sqlite_in_dir(&data),
        ecos_store::StoreConfig {
            gbcs_counter_floor: ecos_party::PartyConfig::default().counter_floor,
            ..Default::default()
        },
    )
    .await
    .expect("store");
    demo::load(&store, &pki).await.expect("demo data");
    store.close().await;

    // A token with the TCoS, ECoS and DSP keys, under labels of their own.
    let conf = softhsm::init_token(
        dir.path(),
        TOKEN,
        PIN,
        &pki_dir,
        &[
            ("tcos-ds", "hsm-tcos"),
            ("ecos-ds", "hsm-ecos"),
            ("dsp-xml-sign", "hsm-dsp"),
        ],
    );
    let pin_file = dir.path().join("pin");
    write_private(&pin_file, &format!("{PIN}\n"), 0o600);
    let config = dir.path().join("ecos.toml");
    let write_config = |tcos_label: &str, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "{extra}[keys.pkcs11]\nmodule = \"{}\"\ntoken = \"{TOKEN}\"\npin_file = \"{}\"\n\
                 tcos_signing = \"{tcos_label}\"\necos_signing = \"hsm-ecos\"\ndsp_xml_sign = \"hsm-dsp\"\n",
                module.display(),
                pin_file.display()
            ),
        )
        .expect("config");
    };
    let log = dir.path().join("serve.log");

    // Refusals first: each names what is wrong.
    write_config("no-such-key", "");
    let err = serve(&conf, &config, &data, &log).expect_err("a missing key label must stop it");
    assert!(
        err.contains("keys.pkcs11.tcos_signing") && err.contains("no-such-key"),
        "{err}"
    );
    write_config("hsm-ecos", "");
    let err = serve(&conf, &config, &data, &log).expect_err("the wrong key must stop it");
    assert!(
        err.contains("keys.pkcs11.tcos_signing") && err.contains("TCoS certificate"),
        "{err}"
    );
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    write_config("hsm-tcos", "");
    let err = serve(&conf, &config, &data, &log).expect_err("an unprotected PIN file must stop it");
    assert!(
        err.contains(&pin_file.display().to_string()) && err.contains("mode 644"),
        "{err}"
    );
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let loose_key = dir.path().join("acb.pem");
    std::fs::copy(softhsm::key_file(&pki_dir, "acb-ka"), &loose_key).expect("copy");
    std::fs::set_permissions(&loose_key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    write_config(
        "hsm-tcos",
        &format!("[keys]\nacb_key_agreement = \"{}\"\n", loose_key.display()),
    );
    let err = serve(&conf, &config, &data, &log).expect_err("a readable key file must stop it");
    assert!(
        err.contains(&loose_key.display().to_string()) && err.contains("mode 640"),
        "{err}"
    );

    // The right labels (and the ACB key from a protected file): a 6.23 end to end.
    std::fs::set_permissions(&loose_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (mut child, base) = serve(&conf, &config, &data, &log)
        .unwrap_or_else(|e| panic!("ecos serve did not start: {e}"));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    for setting in [
        "keys.pkcs11.tcos_signing",
        "keys.pkcs11.dsp_xml_sign",
        "keys.acb_key_agreement",
    ] {
        assert!(
            log_text.contains(setting),
            "{setting} not logged:\n{log_text}"
        );
    }
    let c = reqwest::Client::new();
    let body = RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1)
        .signed(&pki)
        .expect("sign");
    let answer = c
        .post(format!("{base}/api/v1/serviceS"))
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .expect("POST")
        .text()
        .await
        .expect("body");
    assert!(answer.contains("I99"), "{answer}");
    // The meter accepted the token-signed CS02b and answered; the party's
    // DSP-signed response reaches the supplier's poll.
    let dsp_key = pki.dsp_xml_sign().cert.public_key().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        let v: serde_json::Value = c
            .get(format!("{base}/api/v1/responses?since=0"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        if let Some(b) = v["items"]
            .as_array()
            .and_then(|i| i.iter().find_map(|m| m["body"].as_str()))
            .filter(|b| b.contains("I0"))
        {
            break b.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no device response reached the poll: {v}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ecos_xmldsig::verify(
        response.as_bytes(),
        &ecos_xmldsig::Limits::default(),
        |_, _| Some(dsp_key.clone()),
    )
    .expect("the response verifies with the DSP certificate");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
