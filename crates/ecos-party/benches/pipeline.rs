//! The 6.23 pipeline in process, stage by stage, against the crypto bound
//! measured in the same run (one ECDSA verify + one sign + one ECDH with
//! aws-lc-rs): the figures to read are the ratios.
//!
//! Stages: XML signature verification with the read of the signed 6.23;
//! every check (verify, read, signer path from the cache, the request
//! context and the registration look-ups on SQLite); the request context
//! read alone; command build + sign + self-check + MAC (the device's MAC
//! secret cached, the signature verified as `command_signature_check_every` samples it); the durable writes (GBCS counter, acceptance committed
//! whole); the whole `Party::process`; and the pipeline, from
//! request bytes to a signed, MACed command (every check, then build, sign
//! and MAC with the device's pairwise secret agreed afresh: the bound's
//! ECDH; nothing written). The durable writes and the whole process are
//! also run with [`LANES`] requests in flight at once (the whole process:
//! one supplier and one meter per lane, so that no lane's RequestID counter
//! is overtaken by another's) on the same current-thread runtime (one core for the pipeline, plus the
//! SQLite writer thread, whose CPU is counted too): the group commit of the
//! store's writer thread only pays under concurrency.
//!
//! After criterion's own runs, an interleaved report times every stage and
//! the baseline in alternating slices and prints each stage's median cost
//! as a ratio of the baseline, and the whole pipeline's rate as a share of
//! the crypto bound's. Costs are CPU time of the whole process (every
//! thread, sqlx's workers included, from `/proc/self/task/*/schedstat`), so
//! that "requests per second on one core" is what is measured even when the
//! machine is busy; wall-clock medians are printed beside them (on Linux
//! only; elsewhere the report uses wall time). `ECOS_BENCH_SLICES`
//! (default 30) sets the number of slices. Each slice first pays for the
//! caches the stage before it evicted, so the stages that write nothing run
//! 200 requests a slice (the durable ones 20); the long loops of
//! `ECOS_BENCH_PROFILE_TO_COMMAND=N` (with `ECOS_BENCH_PROFILE_PARTS=1`: the
//! pipeline's parts alone, the checks' store reads among them, and timed
//! inside the whole) measure the pipeline
//! in its steady state.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::agreement;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ecos_party::command::{MacSecrets, SignatureChecks};
use ecos_party::demo::{self, RequestSpec};
use ecos_party::{Outcome, Party, PartyConfig};
use ecos_smki::Eui64;
use ecos_store::{
    Acceptance, AcceptanceCommit, NewAuditEntry, NewRequest, RequestKind, RequestState, Store,
    StoreConfig,
};
use jiff::Timestamp;

/// The allocator of the `ecos` binary, so that the figures are the
/// service's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn at() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// One request's crypto floor: verify, sign, ECDH.
struct Bound {
    rng: aws_lc_rs::rand::SystemRandom,
    key: EcdsaKeyPair,
    msg: Vec<u8>,
    sig: Vec<u8>,
    public: Vec<u8>,
    ka: agreement::PrivateKey,
    peer: Vec<u8>,
}

impl Bound {
    fn new() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let msg = vec![0x5Au8; 1800];
        let sig = key.sign(&rng, &msg).unwrap().as_ref().to_vec();
        let public = key.public_key().as_ref().to_vec();
        let ka = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
        let peer = agreement::PrivateKey::generate(&agreement::ECDH_P256)
            .unwrap()
            .compute_public_key()
            .unwrap()
            .as_ref()
            .to_vec();
        Bound {
            rng,
            key,
            msg,
            sig,
            public,
            ka,
            peer,
        }
    }

    fn run(&self) {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(&self.msg, &self.sig)
            .unwrap();
        black_box(self.key.sign(&self.rng, &self.msg).unwrap());
        agreement::agree(
            &self.ka,
            agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &self.peer),
            (),
            |z| Ok(black_box(z.len())),
        )
        .unwrap();
    }
}

/// Fresh signed requests (distinct, rising RequestIDs), signed outside any
/// timed section: signing is the supplier's cost.
struct Bodies {
    next: u64,
}

impl Bodies {
    fn take(&mut self, pki: &ecos_smki::TestPki, n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                self.next += 1;
                RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, self.next, demo::MPAN_1)
                    .signed(pki)
                    .unwrap()
            })
            .collect()
    }

    /// `n` requests for the concurrent runs: request `i` is lane `i %
    /// LANES`'s, from that lane's own supplier for its own meter (see
    /// [`lane_org`]), so that no lane's RequestID counter is overtaken by
    /// another lane's (a supplier's requests reach the DCC in order).
    fn take_lanes(&mut self, pki: &ecos_smki::TestPki, n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let lane = (i % LANES as u64) as usize;
                self.next += 1;
                RequestSpec::new(
                    lane_org(lane),
                    lane_device(lane),
                    self.next,
                    &lane_mpan(lane),
                )
                .signed(pki)
                .unwrap()
            })
            .collect()
    }
}

/// The supplier organisation of concurrent lane `lane` (bench only).
fn lane_org(lane: usize) -> Eui64 {
    Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x0E, 0x00, lane as u8])
}

/// Lane `lane`'s electricity meter.
fn lane_device(lane: usize) -> Eui64 {
    Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x9E, lane as u8])
}

/// Lane `lane`'s MPAN (a valid check digit: the 12 digits weighted by the
/// MPAN primes, mod 11, mod 10).
fn lane_mpan(lane: usize) -> String {
    let core = format!("{:012}", 300_000_000_100u64 + lane as u64);
    const W: [u32; 12] = [3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43];
    let sum: u32 = core
        .bytes()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    format!("{core}{}", sum % 11 % 10)
}

/// The demo PKI plus one supplier and one meter per concurrent lane.
fn bench_pki() -> ecos_smki::TestPki {
    let mut spec = demo::pki_spec(1);
    for lane in 0..LANES {
        spec.suppliers.push(ecos_smki::testpki::OrgSpec {
            name: format!("Bench Supplier {lane}"),
            eui: lane_org(lane),
            mpids_cn: Some(format!("L{lane}EE")),
        });
        spec.devices.push(lane_device(lane));
    }
    ecos_smki::TestPki::generate(&spec).unwrap()
}

/// Load the lanes' suppliers, registrations and meters (beside the demo's).
async fn load_lanes(store: &Store, pki: &ecos_smki::TestPki) {
    use ecos_store::{ImportMode, ImportOptions};
    use std::fmt::Write as _;
    let mut users = String::from("org_eui,name,roles,mpids,response_endpoint\n");
    let mut regdata = String::from("mpxn,supplier_mpid,effective_from,effective_to\n");
    let mut inventory = String::from(
        "device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,csp_region,firmware_version\n",
    );
    let b64 = |der: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    };
    for lane in 0..LANES {
        let (org, dev, mpan) = (lane_org(lane), lane_device(lane), lane_mpan(lane));
        writeln!(
            users,
            "{org},Bench Supplier {lane},IS,L{lane}EE,http://127.0.0.1:9/l{lane}"
        )
        .unwrap();
        writeln!(regdata, "{mpan},L{lane}EE,{},", demo::SWITCH_DATE).unwrap();
        let d = pki.device(dev).unwrap();
        writeln!(
            inventory,
            "{dev},esme,commissioned,{mpan},transitional,{},{},north,4.2.0",
            b64(d.ka.cert.der()),
            b64(d.ds.cert.der())
        )
        .unwrap();
    }
    let opts = |id: &str| ImportOptions::new(id, ImportMode::Refresh);
    store
        .import_service_users(users.as_bytes(), &opts("bench-users"), &mut |_| {})
        .await
        .unwrap();
    store
        .import_registration(regdata.as_bytes(), &opts("bench-regdata"), &mut |_| {})
        .await
        .unwrap();
    store
        .import_inventory(inventory.as_bytes(), &opts("bench-inventory"), &mut |_| {})
        .await
        .unwrap();
}

const PARTY: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x00, 0x00, 0x04]);
const BENCH_ORIGINATOR: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x0F, 0x0F, 0x0F]);

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = bench_pki();
    let dir = tempfile::tempdir().unwrap();
    let config = PartyConfig::default();
    let store = rt.block_on(async {
        let s = Store::open(
            &ecos_store::StoreLocation::sqlite_in_dir(dir.path()),
            StoreConfig {
                gbcs_counter_floor: config.counter_floor,
                ..StoreConfig::default()
            },
        )
        .await
        .unwrap();
        demo::load(&s, &pki).await.unwrap();
        load_lanes(&s, &pki).await;
        s
    });
    let checks = SignatureChecks::new(config.command_signature_check_every);
    let party: Party = demo::party(&pki, store.clone(), config).unwrap();
    // Checked (never stored) with a RequestID counter above every one the
    // whole-process runs accept, so that it passes the replay check throughout.
    let body = RequestSpec::new(
        demo::SUPPLIER_B,
        demo::ESME_TCOS,
        u64::MAX - 1,
        demo::MPAN_1,
    )
    .signed(&pki)
    .unwrap();
    let bound = Bound::new();
    let xml_sign = pki
        .organisation(demo::SUPPLIER_B)
        .unwrap()
        .xml_sign
        .cert
        .public_key()
        .clone();
    let verify_and_read = || {
        black_box(
            ecos_xmldsig::verify_then(
                &body,
                &ecos_xmldsig::VerifyOptions::default(),
                |_, _| Some(xml_sign.clone()),
                |content| {
                    ecos_duis::read_signed(
                        content.bytes,
                        content.tree,
                        &ecos_duis::Limits::default(),
                    )
                    .unwrap()
                },
            )
            .unwrap(),
        );
    };
    let accepted = rt.block_on(party.check(&body, at())).unwrap();
    let keys = demo::keys(&pki).unwrap();
    let secrets = MacSecrets::default();
    let mut counter = 1u64 << 56;
    let mut build = || {
        counter += 1;
        black_box(
            ecos_party::command::build_supplier_by_trans_cos_cached(
                &accepted, &keys, &secrets, &checks, counter,
            )
            .unwrap(),
        );
    };
    // From request bytes to a signed, MACed command (the pipeline):
    // every check, then the command built, signed and MACed with the
    // device's pairwise secret agreed afresh (the ECDH of the crypto bound;
    // the party caches that secret per device, which a stream of 6.23s to
    // different meters does not hit). Nothing is written.
    let to_command_counter = std::cell::Cell::new(1u64 << 57);
    let to_command = || {
        let acc = rt.block_on(party.check(&body, at())).unwrap();
        to_command_counter.set(to_command_counter.get() + 1);
        black_box(
            ecos_party::command::build_supplier_by_trans_cos_cached(
                &acc,
                &keys,
                &MacSecrets::new(1),
                &checks,
                to_command_counter.get(),
            )
            .unwrap(),
        );
    };
    // A MAC secret agreed afresh for a device's KA certificate (the ECDH of
    // the bound), in a cache of its own.
    let fresh_secret = |ka_cert: Option<&[u8]>| {
        let secrets = MacSecrets::new(1);
        secrets.secret(keys.acb.as_ref(), ka_cert).unwrap();
        secrets
    };
    let rid = accepted.request.header.request_id;
    let context = || {
        black_box(
            rt.block_on(store.request_context(rid.originator, &rid.to_string(), rid.target))
                .unwrap(),
        );
    };
    // The durable writes of an acceptance, for a bench-only originator.
    let command = build_acceptance_command(&accepted, &keys);
    let write_one = |n: u64, originator: Eui64| {
        let (store, body, command) = (&store, &body, &command);
        async move {
            let gbcs = store.reserve_gbcs_counter(PARTY).await.unwrap();
            let request = NewRequest {
                request_id: format!("bench-{n}"),
                originator,
                device: rid.target,
                kind: RequestKind::Immediate,
                execution_time: None,
                request_xml: Some(String::from_utf8_lossy(body).into_owned()),
            };
            store
                .commit_acceptance(&Acceptance {
                    request: &request,
                    state: RequestState::Accepted,
                    request_counter: n,
                    command,
                    gbcs_counter: gbcs,
                    cancels: None,
                    audit: NewAuditEntry {
                        actor: "bench",
                        action: "accepted",
                        subject: &request.request_id,
                        detail: "{\"bench\":true}",
                    },
                })
                .await
                .unwrap()
        }
    };
    let write_n = std::cell::Cell::new(0u64);
    let next_write = || {
        write_n.set(write_n.get() + 1);
        write_n.get()
    };
    let mut writes = || {
        black_box(rt.block_on(write_one(next_write(), BENCH_ORIGINATOR)));
    };
    // LANES acceptances in flight at once, queued in counter order.
    let mut writes_concurrent = || {
        // Each lane its own originator (a supplier's requests come in
        // order, one at a time); outside tokio's co-operative budget, which
        // would make a lane yield at an uncontended lock and reorder them.
        let ns: Vec<u64> = (0..LANES).map(|_| next_write()).collect();
        let done = rt.block_on(tokio::task::unconstrained(futures_util::future::join_all(
            ns.into_iter().enumerate().map(|(lane, n)| {
                let mut o = BENCH_ORIGINATOR;
                o.0[7] = lane as u8;
                write_one(n, o)
            }),
        )));
        assert!(
            done.iter().all(|d| *d == AcceptanceCommit::Committed),
            "{done:?}"
        );
    };
    // Concurrent whole-process runs: LANES lanes, each taking its share of
    // `batch` in order; refusals (a lane's counter overtaken) are counted.
    let refused_concurrent = std::cell::Cell::new(0usize);
    let process_concurrent = |batch: &[Vec<u8>]| {
        let lanes = (0..LANES).map(|lane| {
            let party = &party;
            async move {
                let mut refused = 0;
                for b in batch.iter().skip(lane).step_by(LANES) {
                    let (_, outcome) = party.process(b, at()).await.unwrap();
                    refused += usize::from(matches!(outcome, Outcome::Refused(_)));
                }
                refused
            }
        });
        let refused: usize = rt
            .block_on(tokio::task::unconstrained(futures_util::future::join_all(
                lanes,
            )))
            .into_iter()
            .sum();
        refused_concurrent.set(refused_concurrent.get() + refused);
    };

    let mut g = c.benchmark_group("pipeline");
    g.measurement_time(Duration::from_secs(4)).sample_size(30);
    g.bench_function("baseline_crypto_bound_verify_sign_ecdh", |b| {
        b.iter(|| bound.run())
    });
    g.bench_function("stage_xml_verify_and_read", |b| b.iter(verify_and_read));
    g.bench_function("stage_all_checks_sqlite", |b| {
        b.iter(|| black_box(rt.block_on(party.check(&body, at())).unwrap()))
    });
    g.bench_function("stage_request_context_sqlite", |b| b.iter(context));
    g.bench_function("stage_build_sign_selfcheck_mac", |b| b.iter(&mut build));
    g.bench_function("stage_durable_writes_sqlite", |b| b.iter(&mut writes));
    g.bench_function("stage_durable_writes_sqlite_x8_concurrent", |b| {
        b.iter(&mut writes_concurrent)
    });
    let mut bodies = Bodies { next: 10 };
    g.bench_function("whole_process_durable_sqlite", |b| {
        b.iter_custom(|iters| {
            let batch = bodies.take(&pki, iters);
            let start = Instant::now();
            for b in &batch {
                black_box(rt.block_on(party.process(b, at())).unwrap());
            }
            start.elapsed()
        })
    });
    g.bench_function("whole_process_durable_sqlite_x8_concurrent", |b| {
        b.iter_custom(|iters| {
            let batch = bodies.take_lanes(&pki, iters * LANES as u64);
            let start = Instant::now();
            process_concurrent(&batch);
            start.elapsed() / LANES as u32
        })
    });
    g.finish();

    // For a profiler: `ECOS_BENCH_PROFILE_TO_COMMAND=N` runs only N of the
    // request bytes -> signed, MACed command stage and no report.
    if let Some(n) = std::env::var("ECOS_BENCH_PROFILE_TO_COMMAND")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let bound_start = Instant::now();
        for _ in 0..n {
            bound.run();
        }
        let bound_wall = bound_start.elapsed().as_secs_f64();
        let start = Instant::now();
        for _ in 0..n {
            to_command();
        }
        let wall = start.elapsed().as_secs_f64();
        println!(
            "to command x{n}: {:.1} wall µs/req; bound {:.1} wall µs/req",
            wall * 1e6 / n as f64,
            bound_wall * 1e6 / n as f64
        );
        // With `ECOS_BENCH_PROFILE_PARTS=1`, then its parts, each in a loop
        // of its own as long: what the whole costs beyond their sum is what
        // they cost each other (evicted caches) in the same steady state.
        if std::env::var("ECOS_BENCH_PROFILE_PARTS").is_ok_and(|v| v == "1") {
            let us = |f: &mut dyn FnMut()| {
                let start = Instant::now();
                for _ in 0..n {
                    f();
                }
                start.elapsed().as_secs_f64() * 1e6 / n as f64
            };
            let checked = us(&mut || {
                black_box(rt.block_on(party.check(&body, at())).unwrap());
            });
            let secret = us(&mut || {
                black_box(fresh_secret(accepted.device.ka_cert.as_deref()));
            });
            let built = us(&mut build);
            let xml = us(&mut || verify_and_read());
            let (rid, mpxn) = (accepted.request.header.request_id, accepted.mpxn.clone());
            let rid_text = rid.to_string();
            let reads = us(&mut || {
                black_box(
                    rt.block_on(store.check_context(
                        rid.originator,
                        &rid_text,
                        rid.target,
                        Some(&mpxn),
                    ))
                    .unwrap(),
                );
            });
            let whole = us(&mut || to_command());
            let sum = checked + secret + built;
            println!(
                "parts x{n}: checks {checked:.1} (of which XML verify + read {xml:.1}, store \
                 reads {reads:.1}) + MAC secret {secret:.1} + build {built:.1} = {sum:.1} wall \
                 µs/req; the whole again {whole:.1}: {:+.1} µs ({:+.0}%) together",
                whole - sum,
                100.0 * (whole / sum - 1.0)
            );
            // The same three, one after the other as the whole runs them,
            // each timed: which of them runs slower among the others.
            let mut inside = [0.0f64; 3];
            for i in 0..n {
                let t0 = Instant::now();
                let acc = rt.block_on(party.check(&body, at())).unwrap();
                let t1 = Instant::now();
                let secrets = black_box(fresh_secret(acc.device.ka_cert.as_deref()));
                let t2 = Instant::now();
                black_box(
                    ecos_party::command::build_supplier_by_trans_cos_cached(
                        &acc,
                        &keys,
                        &secrets,
                        &checks,
                        (1 << 58) + i,
                    )
                    .unwrap(),
                );
                let t3 = Instant::now();
                for (k, d) in [t1 - t0, t2 - t1, t3 - t2].into_iter().enumerate() {
                    inside[k] += d.as_secs_f64() * 1e6 / n as f64;
                }
            }
            println!(
                "the same parts timed inside the whole: checks {:.1} ({:+.1}), MAC secret {:.1} \
                 ({:+.1}), build {:.1} ({:+.1})",
                inside[0],
                inside[0] - checked,
                inside[1],
                inside[1] - secret,
                inside[2],
                inside[2] - built
            );
        }
        return;
    }

    // For a profiler: `ECOS_BENCH_PROFILE_WHOLE=N` runs only N whole
    // `Party::process` calls (bodies signed before) and no report; with
    // `ECOS_BENCH_PROFILE_LANES=1`, as the concurrent stage runs them
    // ([`LANES`] in flight, one supplier each).
    if let Some(n) = std::env::var("ECOS_BENCH_PROFILE_WHOLE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let lanes = std::env::var("ECOS_BENCH_PROFILE_LANES").is_ok_and(|v| v == "1");
        let batch = if lanes {
            bodies.take_lanes(&pki, n)
        } else {
            bodies.take(&pki, n)
        };
        let (cpu, start) = (cpu_seconds(), Instant::now());
        if lanes {
            process_concurrent(&batch);
        } else {
            for b in &batch {
                black_box(rt.block_on(party.process(b, at())).unwrap());
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a).unwrap_or(wall);
        println!(
            "whole Party::process x{n}{}: {:.1} CPU µs/req, {:.1} wall µs/req; {} refused",
            if lanes { ", lanes" } else { "" },
            cpu * 1e6 / n as f64,
            wall * 1e6 / n as f64,
            refused_concurrent.get()
        );
        return;
    }

    // The interleaved report.
    let slices: usize = std::env::var("ECOS_BENCH_SLICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    const PER_SLICE: u64 = 20;
    // The stages that write nothing run ten times as long per slice: a
    // slice first pays for the caches the stage before it evicted, and
    // over 20 requests that cost reads as the stage's own.
    const PER_SLICE_READ: u64 = 10 * PER_SLICE;
    // Per slice: PER_SLICE bodies for the sequential runs, then CONCURRENT
    // for the concurrent ones, in the order they are used (rising counters).
    const CONCURRENT: u64 = 3 * LANES as u64;
    let mut pool = (0..slices)
        .map(|_| {
            let sequential = bodies.take(&pki, PER_SLICE);
            (sequential, bodies.take_lanes(&pki, CONCURRENT))
        })
        .collect::<Vec<_>>()
        .into_iter();
    let mut times: Vec<(&str, Vec<(f64, f64)>)> = [
        "baseline: verify + sign + ECDH",
        "XML verify + read",
        "all checks (SQLite)",
        "request context read",
        "build + sign + self-check (sampled) + MAC",
        "durable writes (counter, acceptance)",
        "whole Party::process (durable)",
        "durable writes, 8 in flight",
        "whole Party::process, 8 in flight",
        "request bytes -> signed, MACed command",
        "MAC secret agreed afresh (key read + ECDH)",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    let time_n = |n: u64, f: &mut dyn FnMut()| {
        let (cpu, start) = (cpu_seconds(), Instant::now());
        for _ in 0..n {
            f();
        }
        per_request(cpu, start, n as usize)
    };
    let time = |f: &mut dyn FnMut()| time_n(PER_SLICE_READ, f);
    for _ in 0..slices {
        times[0].1.push(time(&mut || bound.run()));
        times[1].1.push(time(&mut || verify_and_read()));
        times[2].1.push(time(&mut || {
            black_box(rt.block_on(party.check(&body, at())).unwrap());
        }));
        times[3].1.push(time(&mut || context()));
        times[4].1.push(time(&mut build));
        times[5].1.push(time_n(PER_SLICE, &mut writes));
        let (batch, concurrent) = pool.next().unwrap();
        let mut i = batch.iter();
        times[6].1.push(time_n(PER_SLICE, &mut || {
            let b = i.next().unwrap();
            black_box(rt.block_on(party.process(b, at())).unwrap());
        }));
        // PER_SLICE / LANES rounds of LANES writes.
        let (cpu, start) = (cpu_seconds(), Instant::now());
        let rounds = PER_SLICE as usize / LANES;
        for _ in 0..rounds {
            writes_concurrent();
        }
        times[7].1.push(per_request(cpu, start, rounds * LANES));
        let (cpu, start) = (cpu_seconds(), Instant::now());
        process_concurrent(&concurrent);
        times[8].1.push(per_request(cpu, start, concurrent.len()));
        times[9].1.push(time(&mut || to_command()));
        times[10].1.push(time(&mut || {
            black_box(fresh_secret(accepted.device.ka_cert.as_deref()));
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cpu = |v: &[(f64, f64)]| median(&mut v.iter().map(|t| t.0).collect());
    let wall = |v: &[(f64, f64)]| median(&mut v.iter().map(|t| t.1).collect());
    let base = cpu(&times[0].1);
    println!(
        "\ninterleaved report: {slices} slices of {PER_SLICE_READ} per stage that writes \
         nothing and {PER_SLICE} per durable stage, medians of process \
         CPU time (all threads); ratio = stage cost / baseline cost"
    );
    println!(
        "{:<40} {:>12} {:>10} {:>16} {:>14}",
        "stage", "CPU µs/req", "ratio", "per second/core", "wall µs/req"
    );
    for (name, v) in &times {
        let m = cpu(v);
        println!(
            "{name:<40} {:>12.1} {:>9.2}x {:>16.0} {:>14.1}",
            m * 1e6,
            m / base,
            1.0 / m,
            wall(v) * 1e6
        );
    }
    // The rates below, as shares of the bound's, in CPU time and in wall
    // time. Where the scheduler's CPU clock advances in ticks (some VMs:
    // whole 4 ms steps, so a slice of 20 requests reads as 0 or 200 µs per
    // request) only the wall figures mean anything: run pinned to one core
    // (`taskset -c 1`) on an otherwise idle core.
    let wbase = wall(&times[0].1);
    for (label, i) in [
        (
            "request bytes -> signed, MACed command (checks on SQLite, ECDH each time, nothing \
             written; target >= 80%)",
            9,
        ),
        ("whole Party::process, durable, one at a time", 6),
        (
            "whole Party::process, durable, 8 in flight (one supplier per lane)",
            8,
        ),
    ] {
        println!(
            "{label}: {:.0}% of the crypto bound's rate in wall time, {:.0}% in CPU time",
            100.0 * wbase / wall(&times[i].1),
            100.0 * base / cpu(&times[i].1),
        );
    }
    // What the pipeline's parts cost each other is measured in long loops
    // (`ECOS_BENCH_PROFILE_PARTS=1`): here every slice follows other
    // stages, whose evicted caches it pays for again.
    println!(
        "{} of the concurrent whole-process requests refused (expected 0)",
        refused_concurrent.get()
    );
    println!(
        "caches: reader certificates {:?}; signer/replacement paths {:?}; MAC secrets {:?}",
        ecos_duis::certificate_cache_stats(),
        party_path_stats(&party),
        secrets.stats()
    );
}

/// Requests in flight at once in the concurrent stages.
const LANES: usize = 8;

/// CPU and wall seconds per request since `cpu`/`start`, over `n` requests.
fn per_request(cpu: Option<f64>, start: Instant, n: usize) -> (f64, f64) {
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a).unwrap_or(wall);
    (cpu / n as f64, wall / n as f64)
}

/// CPU time of every thread of this process, in seconds (Linux).
fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

fn party_path_stats(party: &Party) -> ecos_smki::CacheStats {
    party.smki_path_cache_stats()
}

fn build_acceptance_command(
    accepted: &ecos_party::Accepted,
    keys: &ecos_party::PartyKeys,
) -> Vec<u8> {
    ecos_party::command::build_supplier_by_trans_cos(accepted, keys, 1 << 57)
        .unwrap()
        .bytes
}

criterion_group!(benches, bench);
criterion_main!(benches);
