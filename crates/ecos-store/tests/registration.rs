//! Registration data on both backends: supplier at an instant, refresh and update files,
//! refused files leaving the store as it was.

mod common;

use common::{d, import_reg, m};
use ecos_store::{ImportMode, ImportOptions, RowError, Store, StoreError};

const MPAN: &str = "1312345678907";
const MPRN: &str = "3938424403";
const GAPPY: &str = "1312345678111";

const BASE: &str = "\
mpxn,supplier_mpid,effective_from,effective_to
1312345678907,ACEE,2023-01-01,2024-03-14
1312345678907,BCEE,2024-03-15,
3938424403,ACG,2020-05-01,2024-06-30
3938424403,BCG,2024-07-01,
1312345678111,ACEE,2023-01-01,2023-06-30
1312345678111,BCEE,2023-08-01,
";

async fn supplier(s: &Store, mpxn: &str, date: &str) -> Option<(String, String)> {
    s.registered_supplier_on(&m(mpxn), d(date))
        .await
        .expect("lookup")
        .map(|r| (r.mpid, r.effective_from.to_string()))
}

fn some(mpid: &str, from: &str) -> Option<(String, String)> {
    Some((mpid.to_string(), from.to_string()))
}

async fn supplier_at_boundaries(s: Store) {
    let sum = import_reg(&s, "base", ImportMode::Refresh, BASE)
        .await
        .unwrap();
    assert_eq!((sum.rows, sum.keys, sum.written, sum.removed), (6, 3, 6, 0));
    assert_eq!(
        sum.check_digit_warnings, 2,
        "two rows of 1312345678111, which fails its check digit"
    );

    // The reference table (ecos-domain.md §5.3).
    assert_eq!(
        supplier(&s, MPAN, "2024-03-15").await,
        some("BCEE", "2024-03-15")
    );
    assert_eq!(
        supplier(&s, MPAN, "2024-03-14").await,
        some("ACEE", "2023-01-01")
    );
    assert_eq!(
        supplier(&s, MPAN, "2023-01-01").await,
        some("ACEE", "2023-01-01")
    );
    assert_eq!(supplier(&s, MPAN, "2022-12-31").await, None);
    assert_eq!(
        supplier(&s, MPAN, "2099-01-01").await,
        some("BCEE", "2024-03-15")
    );
    // A gap between registrations.
    assert_eq!(
        supplier(&s, GAPPY, "2023-06-30").await,
        some("ACEE", "2023-01-01")
    );
    assert_eq!(supplier(&s, GAPPY, "2023-07-01").await, None);
    assert_eq!(supplier(&s, GAPPY, "2023-07-31").await, None);
    assert_eq!(
        supplier(&s, GAPPY, "2023-08-01").await,
        some("BCEE", "2023-08-01")
    );
    // Unknown MPxN.
    assert_eq!(supplier(&s, "1000999888", "2024-01-01").await, None);

    // Instants: the as-of date is the Europe/London calendar date.
    let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
    let r = s
        .registered_supplier_at(&m(MPRN), at("2024-06-30T23:30:00Z"))
        .await
        .unwrap();
    assert_eq!(r.map(|r| r.mpid), Some("BCG".into()), "00:30 BST on 1 July");
    let r = s
        .registered_supplier_at(&m(MPRN), at("2024-06-30T22:59:59Z"))
        .await
        .unwrap();
    assert_eq!(
        r.map(|r| r.mpid),
        Some("ACG".into()),
        "23:59 BST on 30 June"
    );
    let r = s
        .registered_supplier_at(&m(MPAN), at("2024-03-15T00:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.mpid.as_str(), r.source_file.as_str(), r.source_line),
        ("BCEE", "base", 3)
    );

    let h = s.registration_history(&m(MPAN)).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].effective_to, Some(d("2024-03-14")));
    assert_eq!(h[1].effective_to, None);
    let c = s.counts().await.unwrap();
    assert_eq!((c.registrations, c.mpxns), (6, 3));
}

async fn snapshot(s: &Store) -> Vec<ecos_store::Registration> {
    let mut all = Vec::new();
    for k in [MPAN, MPRN, GAPPY, "1000000000001"] {
        all.extend(s.registration_history(&m(k)).await.unwrap());
    }
    all
}

fn row_error(e: StoreError) -> (u64, RowError) {
    match e {
        StoreError::Row { at, error } => (at.line, *error),
        other => panic!("expected a row error, got {other}"),
    }
}

async fn overlap_in_file_refused(s: Store) {
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to
1312345678907,ACEE,2023-01-01,2024-03-15
3938424403,ACG,2020-05-01,
1312345678907,BCEE,2024-03-15,
";
    let e = import_reg(&s, "ov", ImportMode::Refresh, text)
        .await
        .unwrap_err();
    let msg = e.to_string();
    let (line, err) = row_error(e);
    assert_eq!(line, 4, "{msg}");
    assert!(
        matches!(err, RowError::Overlap { ref other_where, .. } if other_where == "line 2"),
        "{err}"
    );
    assert!(msg.contains("ov line 4"), "{msg}");
    assert_eq!(
        s.counts().await.unwrap().registrations,
        0,
        "nothing applied"
    );

    // An open period followed by another.
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to
1312345678907,ACEE,2023-01-01,
1312345678907,BCEE,2024-03-15,
";
    let (line, _) = row_error(
        import_reg(&s, "ov2", ImportMode::Refresh, text)
            .await
            .unwrap_err(),
    );
    assert_eq!(line, 3);
    // Same start twice.
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to
1312345678907,ACEE,2023-01-01,2023-02-01
1312345678907,BCEE,2023-01-01,
";
    let (line, err) = row_error(
        import_reg(&s, "dup", ImportMode::Refresh, text)
            .await
            .unwrap_err(),
    );
    assert_eq!(line, 3);
    assert!(matches!(err, RowError::Duplicate { first_line: 2, .. }));
    // Adjacent periods (to = day before from) are fine.
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to
1312345678907,ACEE,2023-01-01,2023-01-31
1312345678907,BCEE,2023-02-01,
";
    import_reg(&s, "adj", ImportMode::Refresh, text)
        .await
        .unwrap();
    assert_eq!(s.counts().await.unwrap().registrations, 2);
}

async fn refresh_replaces_listed_histories(s: Store) {
    import_reg(&s, "base", ImportMode::Refresh, BASE)
        .await
        .unwrap();
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to
1312345678907,CCEE,2024-01-01,
";
    let sum = import_reg(&s, "r2", ImportMode::Refresh, text)
        .await
        .unwrap();
    assert_eq!((sum.written, sum.removed), (1, 2));
    let h = s.registration_history(&m(MPAN)).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].mpid.as_str(), h[0].source_file.as_str()),
        ("CCEE", "r2")
    );
    assert_eq!(
        supplier(&s, MPAN, "2023-06-01").await,
        None,
        "old history gone"
    );
    // Unlisted MPxNs untouched.
    assert_eq!(s.registration_history(&m(MPRN)).await.unwrap().len(), 2);
    assert_eq!(s.registration_history(&m(GAPPY)).await.unwrap().len(), 2);
}

async fn update_applies_deltas(s: Store) {
    import_reg(&s, "base", ImportMode::Refresh, BASE)
        .await
        .unwrap();
    // End-date BCEE and add DCEE; close the gap on GAPPY; delete the first ACG period.
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to,action
1312345678907,BCEE,2024-03-15,2025-01-31,
1312345678907,DCEE,2025-02-01,,
1312345678111,XCEE,2023-07-01,2023-07-31,upsert
3938424403,ACG,2020-05-01,,delete
";
    let sum = import_reg(&s, "u1", ImportMode::Update, text)
        .await
        .unwrap();
    assert_eq!(sum.rows, 4);
    assert_eq!(
        supplier(&s, MPAN, "2025-01-31").await,
        some("BCEE", "2024-03-15")
    );
    assert_eq!(
        supplier(&s, MPAN, "2025-02-01").await,
        some("DCEE", "2025-02-01")
    );
    assert_eq!(
        supplier(&s, MPAN, "2024-01-01").await,
        some("ACEE", "2023-01-01"),
        "kept"
    );
    assert_eq!(
        supplier(&s, GAPPY, "2023-07-15").await,
        some("XCEE", "2023-07-01")
    );
    assert_eq!(supplier(&s, MPRN, "2021-01-01").await, None, "deleted");
    assert_eq!(
        supplier(&s, MPRN, "2024-07-01").await,
        some("BCG", "2024-07-01")
    );
    let h = s.registration_history(&m(MPAN)).await.unwrap();
    assert_eq!(
        h.iter()
            .map(|r| (r.source_file.as_str(), r.source_line))
            .collect::<Vec<_>>(),
        vec![("base", 2), ("u1", 2), ("u1", 3)],
        "provenance kept for untouched rows"
    );

    // An update overlapping what the store holds is refused, naming the store row.
    let before = snapshot(&s).await;
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to
3938424403,ZZG,2024-01-01,2024-12-31
";
    let e = import_reg(&s, "u2", ImportMode::Update, text)
        .await
        .unwrap_err();
    let msg = e.to_string();
    let (line, err) = row_error(e);
    assert_eq!(line, 2);
    assert!(msg.contains("in the store, from base line 5"), "{msg}");
    assert!(matches!(err, RowError::Overlap { .. }));
    assert_eq!(snapshot(&s).await, before);

    // Deleting a period that does not exist is refused.
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to,action
3938424403,BCG,2024-07-02,,delete
";
    let (line, _) = row_error(
        import_reg(&s, "u3", ImportMode::Update, text)
            .await
            .unwrap_err(),
    );
    assert_eq!(line, 2);
    // Delete is not allowed in a refresh.
    let text = "\
mpxn,supplier_mpid,effective_from,effective_to,action
3938424403,BCG,2024-07-01,,delete
";
    let (line, _) = row_error(
        import_reg(&s, "r3", ImportMode::Refresh, text)
            .await
            .unwrap_err(),
    );
    assert_eq!(line, 2);
    assert_eq!(snapshot(&s).await, before);
}

async fn rejected_file_leaves_store_as_it_was(s: Store) {
    import_reg(&s, "base", ImportMode::Refresh, BASE)
        .await
        .unwrap();
    let before = snapshot(&s).await;
    let counts = s.counts().await.unwrap();
    let bad_rows = [
        (
            "1312345678907,ZCEE,2024-03-15,\n1000000000001,ACEE,2024-13-01,\n",
            "effective_from",
        ),
        (
            "1312345678907,ZCEE,2024-03-15,\n1000000000001,acee,2024-01-01,\n",
            "supplier_mpid",
        ),
        (
            "1312345678907,ZCEE,2024-03-15,\n10000000000X1,ACEE,2024-01-01,\n",
            "mpxn",
        ),
        (
            "1312345678907,ZCEE,2024-03-15,\n100000000000,ACEE,2024-01-01,\n",
            "neither an MPAN",
        ),
        (
            "1312345678907,ZCEE,2024-03-15,\n1000000000001,ACEE,2024-01-02,2024-01-01\n",
            "before",
        ),
        (
            "1312345678907,ZCEE,2024-03-15,\n1000000000001,ACEE\n",
            "fields",
        ),
        (
            "1312345678907,ZCEE,2024-03-15,\n1000000000001,\"ACEE,2024-01-01,\n",
            "quoting",
        ),
        (
            "1312345678907,ZCEE,2024-03-15,\n1000000000001,,2024-01-01,\n",
            "required",
        ),
    ];
    for (i, (rows, what)) in bad_rows.iter().enumerate() {
        let text = format!("mpxn,supplier_mpid,effective_from,effective_to\n{rows}");
        for mode in [ImportMode::Refresh, ImportMode::Update] {
            let e = import_reg(&s, &format!("bad{i}{mode:?}"), mode, &text)
                .await
                .unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(what), "{msg} should mention {what}");
            assert_eq!(row_error(e).0, 3, "{msg}");
        }
    }
    let e = import_reg(
        &s,
        "hdr",
        ImportMode::Refresh,
        "mpxn,supplier,effective_from\n",
    )
    .await
    .unwrap_err();
    assert_eq!(row_error(e).0, 1);
    let e = import_reg(&s, "empty", ImportMode::Refresh, "")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NoHeader { .. }));
    // Strict check digits reject the RTDS MPAN.
    let mut opts = ImportOptions::new("strict", ImportMode::Refresh);
    opts.check_digits = ecos_store::CheckDigitPolicies::both(ecos_store::CheckDigitPolicy::Reject);
    let text = "mpxn,supplier_mpid,effective_from\n1312345678907,ZCEE,2024-03-15\n1312345678333,ACEE,2024-01-01\n";
    let e = s
        .import_registration(text.as_bytes(), &opts, &mut |_| {})
        .await
        .unwrap_err();
    let (line, err) = row_error(e);
    assert_eq!(line, 3);
    assert!(matches!(
        err,
        RowError::Mpxn(ecos_store::MpxnError::CheckDigit { .. })
    ));

    assert_eq!(snapshot(&s).await, before);
    assert_eq!(s.counts().await.unwrap(), counts);
}

async fn file_ids_and_sequences(s: Store) {
    let sum = import_reg(&s, "base", ImportMode::Refresh, BASE)
        .await
        .unwrap();
    assert!(!sum.already_imported);
    let again = import_reg(&s, "base", ImportMode::Refresh, BASE)
        .await
        .unwrap();
    assert!(
        again.already_imported,
        "same id and content: idempotent no-op"
    );
    let e = import_reg(
        &s,
        "base",
        ImportMode::Refresh,
        "mpxn,supplier_mpid,effective_from\n",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, StoreError::AlreadyImported { .. }), "{e}");

    let upd = |seq: u64, id: &str| {
        let mut o = ImportOptions::new(id, ImportMode::Update);
        o.source = Some("RDP1".into());
        o.sequence = Some(seq);
        o
    };
    let row = |mpid: &str| {
        format!("mpxn,supplier_mpid,effective_from\n1000000000001,{mpid},2024-01-01\n")
    };
    s.import_registration(row("AAAA").as_bytes(), &upd(7, "u7"), &mut |_| {})
        .await
        .unwrap();
    s.import_registration(row("BBBB").as_bytes(), &upd(8, "u8"), &mut |_| {})
        .await
        .unwrap();
    let e = s
        .import_registration(row("CCCC").as_bytes(), &upd(10, "u10"), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Sequence {
                got: 10,
                expected: 9,
                ..
            }
        ),
        "{e}"
    );
    let e = s
        .import_registration(row("CCCC").as_bytes(), &upd(8, "u8b"), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Sequence {
                got: 8,
                expected: 9,
                ..
            }
        ),
        "{e}"
    );
    s.import_registration(row("CCCC").as_bytes(), &upd(9, "u9"), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        supplier(&s, "1000000000001", "2024-02-01").await,
        some("CCCC", "2024-01-01")
    );
}

async fn progress_is_reported(s: Store) {
    let mut text = String::from("mpxn,supplier_mpid,effective_from,effective_to\n");
    for i in 0..5000u64 {
        let mpan = ecos_store::Mpxn::mpan_with_check_digit(&format!("{:012}", 100_000_000_000 + i))
            .unwrap();
        text.push_str(&format!(
            "{mpan},ACEE,2023-01-01,2023-12-31\n{mpan},BCEE,2024-01-01,\n"
        ));
    }
    let mut events = Vec::new();
    let sum = s
        .import_registration(
            text.as_bytes(),
            &ImportOptions::new("big", ImportMode::Refresh),
            &mut |p| events.push(p),
        )
        .await
        .unwrap();
    assert_eq!(
        (sum.rows, sum.keys, sum.written, sum.check_digit_warnings),
        (10_000, 5_000, 10_000, 0)
    );
    let last_parse = events
        .iter()
        .rfind(|p| p.stage == ecos_store::ImportStage::Parsing)
        .unwrap();
    assert_eq!(last_parse.done, last_parse.total);
    let last_write = events
        .iter()
        .rfind(|p| p.stage == ecos_store::ImportStage::Writing)
        .unwrap();
    assert_eq!((last_write.done, last_write.total), (10_000, 10_000));
    assert_eq!(s.counts().await.unwrap().mpxns, 5_000);
}

async fn batched_lookups_agree(s: Store) {
    import_reg(&s, "base", ImportMode::Refresh, BASE)
        .await
        .unwrap();
    let mut qs = Vec::new();
    for k in [MPAN, MPRN, GAPPY, "1000999888"] {
        for day in [
            "2019-01-01",
            "2023-01-01",
            "2023-07-15",
            "2024-03-14",
            "2024-03-15",
            "2024-07-01",
            "2099-01-01",
        ] {
            qs.push((m(k), d(day)));
        }
    }
    // More than one batch.
    let qs: Vec<_> = qs.iter().cycle().take(1100).cloned().collect();
    let got = s.registered_suppliers_on(&qs).await.unwrap();
    assert_eq!(got.len(), qs.len());
    for ((mp, day), g) in qs.iter().zip(&got) {
        assert_eq!(
            g,
            &s.registered_supplier_on(mp, *day).await.unwrap(),
            "{mp} {day}"
        );
    }
    assert!(got.iter().any(Option::is_some) && got.iter().any(Option::is_none));
}

/// A full refresh from provider RDP1 as of 2024-07-01: the listed MPxN is refreshed; RDP1's
/// periods of every other MPxN that run past 2024-06-30 end on that day (or go, when they
/// start after it); other providers' periods, periods imported without a provider and
/// histories that ended before are untouched.
async fn full_refresh_end_dates_absent_mpxns(s: Store) {
    const FUTURE: &str = "1000000000001";
    const OTHER: &str = "1000000000002";
    const NO_SOURCE: &str = "1000000000003";
    const CLOSED: &str = "1000000000004";
    let with = |id: &str, mode: ImportMode, source: Option<&str>, as_of: Option<&str>| {
        let mut o = ImportOptions::new(id, mode);
        o.source = source.map(str::to_string);
        o.as_of = as_of.map(d);
        o
    };
    let rdp1 = format!(
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         {MPAN},ACEE,2023-01-01,2024-03-14\n{MPAN},BCEE,2024-03-15,\n\
         {MPRN},ACG,2020-05-01,\n{GAPPY},BCEE,2023-08-01,\n\
         {FUTURE},ACEE,2024-01-01,2024-12-31\n{FUTURE},BCEE,2025-01-01,\n\
         {CLOSED},ACEE,2019-01-01,2019-12-31\n"
    );
    let imp = |text: String, o: ImportOptions| {
        let s = s.clone();
        async move {
            s.import_registration(text.as_bytes(), &o, &mut |_| {})
                .await
        }
    };
    imp(rdp1, with("r1", ImportMode::Refresh, Some("RDP1"), None))
        .await
        .unwrap();
    imp(
        format!("mpxn,supplier_mpid,effective_from\n{OTHER},ACEE,2020-01-01\n"),
        with("r2", ImportMode::Refresh, Some("RDP2"), None),
    )
    .await
    .unwrap();
    imp(
        format!("mpxn,supplier_mpid,effective_from\n{NO_SOURCE},ACEE,2020-01-01\n"),
        with("r3", ImportMode::Refresh, None, None),
    )
    .await
    .unwrap();

    // Refused: no provider; not registration data; a bad row (nothing applied).
    let before = s.registration_history(&m(MPRN)).await.unwrap();
    let e = imp(
        format!("mpxn,supplier_mpid,effective_from\n{MPAN},ACEE,2023-01-01\n"),
        with("f0", ImportMode::FullRefresh, None, Some("2024-07-01")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(ref t) if t.contains("provider")),
        "{e}"
    );
    let e = s
        .import_inventory(
            b"device_eui,device_type,status\n00DB1234567890A0,esme,commissioned\n",
            &with(
                "f1",
                ImportMode::FullRefresh,
                Some("RDP1"),
                Some("2024-07-01"),
            ),
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(ref t) if t.contains("registration data only")),
        "{e}"
    );
    let e = imp(
        format!(
            "mpxn,supplier_mpid,effective_from,effective_to\n\
             {MPAN},ACEE,2023-01-01,2024-03-14\n{MPAN},BCEE,2024-03-01,\n"
        ),
        with(
            "f2",
            ImportMode::FullRefresh,
            Some("RDP1"),
            Some("2024-07-01"),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(row_error(e).0, 3);
    assert_eq!(s.registration_history(&m(MPRN)).await.unwrap(), before);

    let sum = imp(
        format!(
            "mpxn,supplier_mpid,effective_from,effective_to\n\
             {MPAN},ACEE,2023-01-01,2024-03-14\n{MPAN},BCEE,2024-03-15,2024-07-31\n\
             {MPAN},CCEE,2024-08-01,\n"
        ),
        with(
            "full1",
            ImportMode::FullRefresh,
            Some("RDP1"),
            Some("2024-07-01"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(sum.mode, ImportMode::FullRefresh);
    assert_eq!(
        (sum.rows, sum.keys, sum.written, sum.removed, sum.end_dated),
        (3, 1, 3, 2, 4),
        "{sum:?}"
    );
    let hist = |k: &'static str| {
        let s = s.clone();
        async move {
            s.registration_history(&m(k))
                .await
                .unwrap()
                .into_iter()
                .map(|r| {
                    format!(
                        "{} {}..{}",
                        r.mpid,
                        r.effective_from,
                        r.effective_to.map(|t| t.to_string()).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        hist(MPAN).await,
        [
            "ACEE 2023-01-01..2024-03-14",
            "BCEE 2024-03-15..2024-07-31",
            "CCEE 2024-08-01.."
        ]
    );
    assert_eq!(hist(MPRN).await, ["ACG 2020-05-01..2024-06-30"]);
    assert_eq!(hist(GAPPY).await, ["BCEE 2023-08-01..2024-06-30"]);
    assert_eq!(hist(FUTURE).await, ["ACEE 2024-01-01..2024-06-30"]);
    assert_eq!(hist(OTHER).await, ["ACEE 2020-01-01.."]);
    assert_eq!(hist(NO_SOURCE).await, ["ACEE 2020-01-01.."]);
    assert_eq!(hist(CLOSED).await, ["ACEE 2019-01-01..2019-12-31"]);
    assert_eq!(
        supplier(&s, MPRN, "2024-06-30").await,
        some("ACG", "2020-05-01")
    );
    assert_eq!(supplier(&s, MPRN, "2024-07-01").await, None);

    // The full refresh's own rows are the provider's population for the next one.
    let sum = imp(
        format!("mpxn,supplier_mpid,effective_from\n{MPRN},ACG,2020-05-01\n"),
        with(
            "full2",
            ImportMode::FullRefresh,
            Some("RDP1"),
            Some("2024-09-01"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (sum.written, sum.removed, sum.end_dated),
        (1, 1, 1),
        "{sum:?}"
    );
    assert_eq!(
        hist(MPAN).await,
        [
            "ACEE 2023-01-01..2024-03-14",
            "BCEE 2024-03-15..2024-07-31",
            "CCEE 2024-08-01..2024-08-31"
        ]
    );
    assert_eq!(hist(MPRN).await, ["ACG 2020-05-01.."]);
    assert_eq!(hist(OTHER).await, ["ACEE 2020-01-01.."]);
}

/// The `i`-th MPAN of the large files: ascending with `i`.
fn big_mpan(i: u64) -> String {
    ecos_store::Mpxn::mpan_with_check_digit(&format!("{:012}", 200_000_000_000 + i))
        .unwrap()
        .to_string()
}

/// A registration file of `n` MPANs with two periods each (`sup` the second supplier), in
/// key order, plus `extra` lines at the end.
fn big_file(n: u64, sup: &str, extra: &str) -> String {
    let mut t = String::from("mpxn,supplier_mpid,effective_from,effective_to\n");
    for i in 0..n {
        let m = big_mpan(i);
        t.push_str(&format!(
            "{m},ACEE,2020-01-01,2022-12-31\n{m},{sup},2023-01-01,\n"
        ));
    }
    t.push_str(extra);
    t
}

/// Refresh files large enough to be written while they are parsed (many chunks): a bad row,
/// an overlap or a duplicate found late still leaves the store as it was and names the same
/// line as a file checked in memory; files out of key order are imported all the same;
/// a refresh of part of a non-empty store replaces exactly the histories it lists.
async fn large_refresh_files(s: Store) {
    const N: u64 = 12_000;
    let last = 2 * N + 2; // the line after the generated rows
    // A bad date on the last line.
    let bad = big_file(N, "BCEE", &format!("{},ACEE,2024-02-30,\n", big_mpan(N)));
    let e = import_reg(&s, "bad", ImportMode::Refresh, &bad)
        .await
        .unwrap_err();
    assert_eq!(row_error(e).0, last);
    assert_eq!(s.counts().await.unwrap().registrations, 0);
    // An overlap with the row before, late in the file.
    let ov = big_file(
        N,
        "BCEE",
        &format!("{},CCEE,2024-01-01,\n", big_mpan(N - 1)),
    );
    let (line, err) = row_error(
        import_reg(&s, "ov", ImportMode::Refresh, &ov)
            .await
            .unwrap_err(),
    );
    assert_eq!(line, last);
    assert!(
        matches!(err, RowError::Overlap { ref other_where, .. } if *other_where == format!("line {}", last - 1)),
        "{err}"
    );
    assert_eq!(s.counts().await.unwrap().registrations, 0);
    // A duplicate is named before an overlap, wherever they are.
    let dup = format!("{}{},ZCEE,2020-01-01,2020-01-31\n", ov, big_mpan(5));
    let (line, err) = row_error(
        import_reg(&s, "dup", ImportMode::Refresh, &dup)
            .await
            .unwrap_err(),
    );
    assert_eq!(line, last + 1);
    assert!(
        matches!(err, RowError::Duplicate { first_line: 12, .. }),
        "{err}"
    );
    assert_eq!(s.counts().await.unwrap().registrations, 0);

    // A good file.
    let good = big_file(N, "BCEE", "");
    let sum = import_reg(&s, "good", ImportMode::Refresh, &good)
        .await
        .unwrap();
    assert_eq!(
        (sum.rows, sum.keys, sum.written, sum.removed),
        (2 * N, N, 2 * N, 0)
    );
    let c = s.counts().await.unwrap();
    assert_eq!((c.registrations, c.mpxns), (2 * N, N));
    for i in [0, 1, N / 2, N - 1] {
        assert_eq!(
            supplier(&s, &big_mpan(i), "2022-12-31").await,
            some("ACEE", "2020-01-01")
        );
        assert_eq!(
            supplier(&s, &big_mpan(i), "2023-01-01").await,
            some("BCEE", "2023-01-01")
        );
    }

    // A refresh of every other MPAN, in descending order: their histories
    // become the file's, the others stay; progress never goes back.
    let mut t = String::from("mpxn,supplier_mpid,effective_from,effective_to\n");
    for i in (0..N).rev().filter(|i| i % 2 == 0) {
        t.push_str(&format!("{},DCEE,2021-06-01,\n", big_mpan(i)));
    }
    let mut events = Vec::new();
    let sum = s
        .import_registration(
            t.as_bytes(),
            &ImportOptions::new("half", ImportMode::Refresh),
            &mut |p| events.push(p),
        )
        .await
        .unwrap();
    assert_eq!((sum.rows, sum.keys, sum.removed), (N / 2, N / 2, N));
    let parsed: Vec<u64> = events
        .iter()
        .filter(|p| p.stage == ecos_store::ImportStage::Parsing)
        .map(|p| p.done)
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{parsed:?}");
    assert_eq!(
        supplier(&s, &big_mpan(0), "2024-01-01").await,
        some("DCEE", "2021-06-01")
    );
    assert_eq!(supplier(&s, &big_mpan(0), "2021-01-01").await, None);
    assert_eq!(
        supplier(&s, &big_mpan(1), "2024-01-01").await,
        some("BCEE", "2023-01-01")
    );

    // The same in key order: the other half.
    let mut t = String::from("mpxn,supplier_mpid,effective_from,effective_to\n");
    for i in (1..N).step_by(2) {
        t.push_str(&format!("{},ECEE,2021-06-01,\n", big_mpan(i)));
    }
    let sum = import_reg(&s, "other", ImportMode::Refresh, &t)
        .await
        .unwrap();
    assert_eq!((sum.rows, sum.keys, sum.removed), (N / 2, N / 2, N));
    let c = s.counts().await.unwrap();
    assert_eq!((c.registrations, c.mpxns), (N, N));
    assert_eq!(
        supplier(&s, &big_mpan(N - 1), "2024-01-01").await,
        some("ECEE", "2021-06-01")
    );
    assert_eq!(
        supplier(&s, &big_mpan(N - 2), "2024-01-01").await,
        some("DCEE", "2021-06-01")
    );
}

suite!(
    full_refresh_end_dates_absent_mpxns,
    batched_lookups_agree,
    supplier_at_boundaries,
    overlap_in_file_refused,
    refresh_replaces_listed_histories,
    update_applies_deltas,
    rejected_file_leaves_store_as_it_was,
    file_ids_and_sequences,
    progress_is_reported,
    large_refresh_files,
);

#[test]
fn check_file_without_a_store() {
    let opts = ImportOptions::new("dry", ImportMode::Refresh);
    let c =
        ecos_store::check_file(ecos_store::FileKind::Registration, BASE.as_bytes(), &opts).unwrap();
    assert_eq!((c.rows, c.keys, c.check_digit_warnings), (6, 3, 2));
    let bad = "mpxn,supplier_mpid,effective_from\n1312345678907,ACEE,2024-01-01\n1312345678907,BCEE,2024-01-01\n";
    let e = ecos_store::check_file(ecos_store::FileKind::Registration, bad.as_bytes(), &opts)
        .unwrap_err();
    assert_eq!(row_error(e).0, 3);
    let inv = "device_eui,device_type,status\n00DB1234567890A0,esme,commissioned\n";
    let c = ecos_store::check_file(ecos_store::FileKind::Inventory, inv.as_bytes(), &opts).unwrap();
    assert_eq!(c.rows, 1);
    // A registration file is not an inventory file.
    assert!(
        ecos_store::check_file(ecos_store::FileKind::Inventory, BASE.as_bytes(), &opts).is_err()
    );
}

/// A large refresh into an empty SQLite table drops the registration table's secondary
/// indexes for the load and builds them again in the same transaction: after a refused file
/// and after a good one, the indexes are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bulk_load_keeps_its_indexes() {
    let (s, dir) = common::sqlite_store().await;
    let indexes = || {
        let c = rusqlite::Connection::open(dir.path().join("ecos.db")).unwrap();
        let mut st = c
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' \
                 AND tbl_name = 'registration' AND sql IS NOT NULL ORDER BY name",
            )
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    let before = indexes();
    assert!(!before.is_empty());
    // Reversed on the last line: found after every other row went to the database.
    let bad = big_file(
        20_000,
        "BCEE",
        &format!("{},ACEE,2024-01-01,2023-01-01\n", big_mpan(20_000)),
    );
    import_reg(&s, "bad", ImportMode::Refresh, &bad)
        .await
        .unwrap_err();
    assert_eq!(indexes(), before);
    import_reg(
        &s,
        "good",
        ImportMode::Refresh,
        &big_file(20_000, "BCEE", ""),
    )
    .await
    .unwrap();
    assert_eq!(indexes(), before);
    assert_eq!(s.counts().await.unwrap().registrations, 40_000);
    s.close().await;
}
