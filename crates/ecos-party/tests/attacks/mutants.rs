//! Deterministic mutation sweep over an accepted request (part of `attacks`).

use super::*;

/// The original request is accepted first, so every mutant (a flipped bit,
/// a deleted or a duplicated span) must be refused: never an internal error
/// (HTTP 500), never a panic, never a second acceptance, nothing sent.
#[tokio::test]
async fn mutants_of_an_accepted_request_are_all_refused() {
    let w = world().await;
    let original = signed(&w.pki, 1).into_bytes();
    assert_accepted(&w, "original", &original, at()).await;
    // xorshift64: reproducible without a dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n as u64).expect("below n")
    };
    let mut by_code = std::collections::BTreeMap::<&'static str, usize>::new();
    for i in 0..400 {
        let mut m = original.clone();
        let pos = next(m.len());
        match i % 3 {
            0 => m[pos] ^= 1 << next(8),
            1 => {
                let end = (pos + 1 + next(40)).min(m.len());
                m.drain(pos..end);
            }
            _ => {
                let end = (pos + 1 + next(40)).min(m.len());
                let span = m[pos..end].to_vec();
                m.splice(pos..pos, span);
            }
        }
        if m == original {
            continue;
        }
        let (answer, outcome) = match w.party.process(&m, at()).await {
            Ok(v) => v,
            Err(e) => panic!(
                "mutant {i} (HTTP 500): {e}\n{}",
                String::from_utf8_lossy(&m)
            ),
        };
        match outcome {
            Outcome::Refused(r) => {
                *by_code.entry(r.reason.code()).or_default() += 1;
                assert!(
                    matches!(answer.http_status, 200 | 400),
                    "mutant {i}: HTTP {}",
                    answer.http_status
                );
            }
            other => panic!(
                "mutant {i} not refused: {other:?}\n{}",
                String::from_utf8_lossy(&m)
            ),
        }
    }
    assert_eq!(w.sent.count(), 1, "only the original was sent");
    eprintln!("mutants refused, by reason: {by_code:?}");
    assert!(by_code.len() >= 3, "{by_code:?}");
}
