//! Read-only queries for operators (the admin API of `ecos serve`): requests and their
//! outcomes, listed newest first and paged with a keyset cursor, filtered by state,
//! service user (the originator), device and kind.
//!
//! The list leaves out the large columns (the request as received and the GBCS command);
//! [`Store::request`] reads one request whole.

use ecos_smki::Eui64;
use jiff::Timestamp;

use crate::error::{Result, StoreError};
use crate::pipeline::{RequestKind, RequestState, ordered_i64_to_u64};
use crate::store::{Store, corrupt, micros_to_ts, on_pool};

/// The most requests one page may hold.
pub const MAX_PAGE: u32 = 1000;

/// Which requests to list. Every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only requests in this state.
    pub state: Option<RequestState>,
    /// Only requests from this originator (the service user).
    pub originator: Option<Eui64>,
    /// Only requests for this device.
    pub device: Option<Eui64>,
    /// Only requests of this kind.
    pub kind: Option<RequestKind>,
}

/// Where a page starts: after the request recorded at `created_at` with `request_id`
/// (the list runs newest first, ties broken by descending RequestID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCursor {
    /// The last listed request's `created_at`.
    pub created_at: Timestamp,
    /// The last listed request's RequestID.
    pub request_id: String,
}

impl RequestCursor {
    /// The opaque text form: `<microseconds>.<RequestID>`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            crate::store::ts_to_micros(self.created_at),
            self.request_id
        )
    }

    /// Read [`RequestCursor::encode`]'s form.
    pub fn decode(s: &str) -> Result<RequestCursor> {
        let bad = || StoreError::Invalid(format!("cursor {s:?} is not one this service issued"));
        let (micros, id) = s.split_once('.').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = Timestamp::from_microsecond(micros).map_err(|_| bad())?;
        if id.is_empty() {
            return Err(bad());
        }
        Ok(RequestCursor {
            created_at,
            request_id: id.to_string(),
        })
    }
}

/// A request as listed: everything but the request body and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    /// The DUIS RequestID.
    pub request_id: String,
    /// The originator (service user).
    pub originator: Eui64,
    /// The target device.
    pub device: Eui64,
    /// Immediate, future-dated or cancellation.
    pub kind: RequestKind,
    /// The execution instant of a future-dated request.
    pub execution_time: Option<Timestamp>,
    /// Current state.
    pub state: RequestState,
    /// Why it was decided so, if decided (the pipeline writes its reason as JSON).
    pub decision_reason: Option<String>,
    /// The GBCS originator counter of its command.
    pub gbcs_counter: Option<u64>,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// One page of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPage {
    /// The requests, newest first.
    pub items: Vec<RequestSummary>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<RequestCursor>,
}

type SummaryTuple = (
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<i64>,
    i64,
    i64,
);

const SUMMARY_COLS: &str = "request_id, originator, device_eui, kind, execution_time, state, \
     decision_reason, gbcs_counter, created_at, updated_at";

fn summary_from_tuple(t: SummaryTuple) -> Result<RequestSummary> {
    let (id, orig, dev, kind, exec, state, reason, ctr, created, updated) = t;
    let eui = |c: &'static str, s: &str| s.parse::<Eui64>().map_err(|_| corrupt("requests", c, s));
    Ok(RequestSummary {
        originator: eui("originator", &orig)?,
        device: eui("device_eui", &dev)?,
        kind: kind
            .parse()
            .map_err(|_| corrupt("requests", "kind", &kind))?,
        execution_time: exec
            .map(|v| micros_to_ts("requests", "execution_time", v))
            .transpose()?,
        state: state
            .parse()
            .map_err(|_| corrupt("requests", "state", &state))?,
        decision_reason: reason,
        gbcs_counter: ctr.map(ordered_i64_to_u64),
        created_at: micros_to_ts("requests", "created_at", created)?,
        updated_at: micros_to_ts("requests", "updated_at", updated)?,
        request_id: id,
    })
}

/// A bind value of the list query.
enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    /// Requests matching `filter`, newest first, at most `limit` (1 to [`MAX_PAGE`]),
    /// starting after `after` (a cursor from the previous page).
    pub async fn list_requests(
        &self,
        filter: &RequestFilter,
        after: Option<&RequestCursor>,
        limit: u32,
    ) -> Result<RequestPage> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(StoreError::Invalid(format!(
                "limit {limit}: a page holds 1 to {MAX_PAGE} requests"
            )));
        }
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        let mut push = |clause: &str, b: Bind, binds: &mut Vec<Bind>| {
            binds.push(b);
            clauses.push(clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(s) = filter.state {
            push("state = ?", Bind::Text(s.as_str().into()), &mut binds);
        }
        if let Some(o) = filter.originator {
            push("originator = ?", Bind::Text(o.to_compact()), &mut binds);
        }
        if let Some(d) = filter.device {
            push("device_eui = ?", Bind::Text(d.to_compact()), &mut binds);
        }
        if let Some(k) = filter.kind {
            push("kind = ?", Bind::Text(k.as_str().into()), &mut binds);
        }
        if let Some(c) = after {
            let micros = crate::store::ts_to_micros(c.created_at);
            binds.push(Bind::Int(micros));
            binds.push(Bind::Int(micros));
            binds.push(Bind::Text(c.request_id.clone()));
            let n = binds.len();
            clauses.push(format!(
                "(created_at < ${} OR (created_at = ${} AND request_id < ${}))",
                n - 2,
                n - 1,
                n
            ));
        }
        binds.push(Bind::Int(i64::from(limit) + 1));
        let where_ = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {SUMMARY_COLS} FROM requests {where_} \
             ORDER BY created_at DESC, request_id DESC LIMIT ${}",
            binds.len()
        );
        let rows: Vec<SummaryTuple> = on_pool!(self, |p| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.as_str()),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            q.fetch_all(p).await?
        });
        let mut items = rows
            .into_iter()
            .map(summary_from_tuple)
            .collect::<Result<Vec<_>>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| RequestCursor {
                created_at: r.created_at,
                request_id: r.request_id.clone(),
            })
        } else {
            None
        };
        Ok(RequestPage { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{NewRequest, RequestUpdate};

    fn eui(s: &str) -> Eui64 {
        s.parse().expect("EUI")
    }

    async fn listing_cases(s: Store) {
        let (a, b) = (eui("90B3D51F30010000"), eui("90B3D51F30030000"));
        let (d1, d2) = (eui("00DB1234567890A0"), eui("00DB1234567890B0"));
        // 25 requests: originator a for even i, b for odd; device d1 below 10, d2 from 10.
        for i in 0..25u64 {
            let (o, d) = (if i % 2 == 0 { a } else { b }, if i < 10 { d1 } else { d2 });
            let id = format!("{}:{}:{}", o.to_compact(), d.to_compact(), 100 + i);
            s.insert_request(&NewRequest {
                request_id: id.clone(),
                originator: o,
                device: d,
                kind: RequestKind::Immediate,
                execution_time: None,
                request_xml: Some("<x/>".into()),
            })
            .await
            .unwrap();
            if i % 5 == 0 {
                s.transition_request(
                    &id,
                    &[RequestState::Received],
                    RequestUpdate::to(RequestState::Rejected).with_reason("{\"reason\":\"x\"}"),
                )
                .await
                .unwrap();
            }
        }
        // Paging over everything: 10 + 10 + 5, newest first, nothing twice or lost.
        let all = RequestFilter::default();
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = s.list_requests(&all, after.as_ref(), 10).await.unwrap();
            pages += 1;
            seen.extend(
                page.items
                    .iter()
                    .map(|r| (r.created_at, r.request_id.clone())),
            );
            match page.next {
                Some(c) => after = Some(RequestCursor::decode(&c.encode()).unwrap()),
                None => break,
            }
        }
        assert_eq!((pages, seen.len()), (3, 25));
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "newest first, each once: {seen:?}"
        );
        // Filters, alone and together.
        let count = |f: RequestFilter| {
            let s = s.clone();
            async move { s.list_requests(&f, None, 100).await.unwrap().items }
        };
        let rejected = count(RequestFilter {
            state: Some(RequestState::Rejected),
            ..Default::default()
        })
        .await;
        assert_eq!(rejected.len(), 5);
        assert!(
            rejected
                .iter()
                .all(|r| r.decision_reason.as_deref() == Some("{\"reason\":\"x\"}"))
        );
        assert_eq!(
            count(RequestFilter {
                originator: Some(b),
                ..Default::default()
            })
            .await
            .len(),
            12
        );
        let b_d1 = count(RequestFilter {
            originator: Some(b),
            device: Some(d1),
            ..Default::default()
        })
        .await;
        assert_eq!(b_d1.len(), 5);
        assert!(b_d1.iter().all(|r| r.originator == b && r.device == d1));
        assert_eq!(
            count(RequestFilter {
                kind: Some(RequestKind::FutureDated),
                ..Default::default()
            })
            .await
            .len(),
            0
        );
        assert!(matches!(
            s.list_requests(&all, None, 0).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(RequestCursor::decode("x.y").is_err());
        assert!(RequestCursor::decode("12").is_err());
        assert!(RequestCursor::decode("12.").is_err());
    }

    #[tokio::test]
    async fn requests_are_listed_paged_and_filtered_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            &crate::StoreLocation::sqlite_in_dir(dir.path()),
            crate::StoreConfig::default(),
        )
        .await
        .unwrap();
        listing_cases(s).await;
    }

    #[tokio::test]
    async fn requests_are_listed_paged_and_filtered_postgres() {
        let Ok(url) = std::env::var("ECOS_TEST_POSTGRES_URL") else {
            eprintln!("skipping request listing on PostgreSQL: ECOS_TEST_POSTGRES_URL is not set");
            return;
        };
        let schema = format!(
            "t_query_{}_{}",
            std::process::id(),
            Timestamp::now().as_nanosecond().rem_euclid(1_000_000_000)
        );
        let s = Store::open(
            &crate::StoreLocation::Postgres {
                url,
                schema: Some(schema),
            },
            crate::StoreConfig::default(),
        )
        .await
        .unwrap();
        listing_cases(s).await;
    }
}
