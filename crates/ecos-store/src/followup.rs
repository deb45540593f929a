//! What the 6.23 pipeline needs around a change of supplier, beyond the request itself:
//! every pending future-dated request (to re-validate them when registration data
//! changes), service users by MPID (to find the losing supplier), the supplier
//! credentials a device holds after a switch (schema 0006), and a marker that moves
//! whenever registration data or the inventory is imported.

use ecos_smki::Eui64;
use jiff::Timestamp;
use sqlx::AssertSqlSafe;

use crate::error::Result;
use crate::model::ServiceUser;
use crate::pipeline::{
    REQ_COLS, ReqTuple, RequestKind, RequestState, StoredRequest, req_from_tuple,
};
use crate::store::{Store, corrupt, micros_to_ts, on_pool, ts_to_micros};

/// The supplier credentials a device holds after a change of supplier: the
/// replacement certificates the device reported installed, and whose they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSupplierCredentials {
    /// The device.
    pub eui: Eui64,
    /// The organisation now in the device's supplier cells (the new SUI).
    pub supplier: Eui64,
    /// The supplier digital-signing certificate (DER), if its cell was replaced.
    pub ds_cert: Option<Vec<u8>>,
    /// The supplier key-agreement certificate (DER), if its cell was replaced.
    pub ka_cert: Option<Vec<u8>>,
    /// The supplier prepayment top-up key-agreement certificate (DER), if replaced.
    pub ka_top_up_cert: Option<Vec<u8>>,
    /// The 6.23 request that installed them.
    pub request_id: String,
    /// When the device's report was taken.
    pub updated_at: Timestamp,
}

/// Where registration-data and inventory imports stand: changes whenever such a file
/// is imported (a poller compares two markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataImportMarker {
    /// Registration and inventory files imported.
    pub files: u64,
    /// When the last one was imported (microseconds since the epoch; 0 if none).
    pub last_imported_us: i64,
}

type CredTuple = (
    String,
    String,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    String,
    i64,
);

impl Store {
    /// Every future-dated request still pending (accepted or dispatched), earliest
    /// execution first, at most `limit` after `after_request_id` (paging by id order
    /// is stable: pass the last id seen).
    pub async fn pending_future_dated(
        &self,
        after_request_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredRequest>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM requests WHERE kind = 'future-dated' \
             AND state IN ('accepted', 'dispatched') \
             AND request_id > $1 ORDER BY request_id LIMIT $2"
        );
        let rows: Vec<ReqTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(after_request_id)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(req_from_tuple).collect()
    }

    /// Requester-originated requests whose command left for the device
    /// (`dispatched`) and that the device has not answered in time, oldest
    /// first, at most `limit`: immediate requests and cancellations last
    /// moved before `sent_before`, future-dated ones whose execution time is
    /// before `executed_before` (their outcome comes in the 0x00CB alert).
    pub async fn unanswered_requests(
        &self,
        sent_before: Timestamp,
        executed_before: Timestamp,
        limit: u32,
    ) -> Result<Vec<StoredRequest>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM requests WHERE state = 'dispatched' \
             AND request_xml IS NOT NULL \
             AND ((kind <> 'future-dated' AND updated_at < $1) \
             OR (kind = 'future-dated' AND execution_time < $2)) \
             ORDER BY updated_at, request_id LIMIT $3"
        );
        let rows: Vec<ReqTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(ts_to_micros(sent_before))
            .bind(ts_to_micros(executed_before))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(req_from_tuple).collect()
    }

    /// Future-dated requests still `accepted` (their command has not left) whose
    /// execution instant is at or before `due_by`, earliest execution first, at most
    /// `limit`, after the `(execution instant, request id)` cursor `after` (pass the
    /// last one seen): the held requests a dispatch sweep sends
    /// (`requests_held_future_dated`, schema 0008). The kind and state are literals
    /// so that the partial index serves.
    pub async fn held_future_dated_due(
        &self,
        due_by: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: u32,
    ) -> Result<Vec<StoredRequest>> {
        debug_assert_eq!(RequestKind::FutureDated.as_str(), "future-dated");
        debug_assert_eq!(RequestState::Accepted.as_str(), "accepted");
        let sql = format!(
            "SELECT {REQ_COLS} FROM requests WHERE kind = 'future-dated' \
             AND state = 'accepted' AND execution_time <= $1 \
             AND (execution_time > $2 OR (execution_time = $2 AND request_id > $3)) \
             ORDER BY execution_time, request_id LIMIT $4"
        );
        let (after_at, after_id) = match after {
            Some((t, id)) => (ts_to_micros(t), id),
            None => (i64::MIN, ""),
        };
        let rows: Vec<ReqTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(ts_to_micros(due_by))
            .bind(after_at)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(req_from_tuple).collect()
    }

    /// Party-originated cancellations (re-validation; no request XML) whose
    /// command was built and recorded but never left (`accepted`), oldest
    /// first, at most `limit`.
    pub async fn unsent_party_cancellations(&self, limit: u32) -> Result<Vec<StoredRequest>> {
        let sql = format!(
            "SELECT {REQ_COLS} FROM requests WHERE kind = 'cancellation' \
             AND state = 'accepted' AND request_xml IS NULL AND command IS NOT NULL \
             ORDER BY created_at, request_id LIMIT $1"
        );
        let rows: Vec<ReqTuple> = on_pool!(self, |p| sqlx::query_as(AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(req_from_tuple).collect()
    }

    /// The service users trading under `mpid` (an MPID or gas short code), by EUI.
    pub async fn service_users_by_mpid(&self, mpid: &str) -> Result<Vec<ServiceUser>> {
        // MPIDs are `A-Z0-9` (no LIKE wildcards); the list is space-separated.
        let rows: Vec<(String,)> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT org_eui FROM service_users WHERE (' ' || mpids || ' ') LIKE ('% ' || $1 || ' %') \
             ORDER BY org_eui"
        )
        .bind(mpid)
        .fetch_all(p)
        .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for (e,) in rows {
            let eui = e
                .parse::<Eui64>()
                .map_err(|_| corrupt("service_users", "org_eui", &e))?;
            if let Some(u) = self.service_user(eui).await?
                && u.mpids.iter().any(|m| m == mpid)
            {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Record the supplier credentials a device now holds (replacing what was recorded).
    pub async fn set_device_supplier_credentials(
        &self,
        c: &DeviceSupplierCredentials,
    ) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO device_supplier_credentials (eui, supplier_eui, ds_cert, ka_cert, \
             ka_top_up_cert, request_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (eui) DO UPDATE SET supplier_eui = excluded.supplier_eui, \
             ds_cert = excluded.ds_cert, ka_cert = excluded.ka_cert, \
             ka_top_up_cert = excluded.ka_top_up_cert, request_id = excluded.request_id, \
             updated_at = excluded.updated_at"
        )
        .bind(c.eui.to_compact())
        .bind(c.supplier.to_compact())
        .bind(&c.ds_cert)
        .bind(&c.ka_cert)
        .bind(&c.ka_top_up_cert)
        .bind(&c.request_id)
        .bind(ts_to_micros(c.updated_at))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The supplier credentials recorded for a device, if a change of supplier completed.
    pub async fn device_supplier_credentials(
        &self,
        eui: Eui64,
    ) -> Result<Option<DeviceSupplierCredentials>> {
        let row: Option<CredTuple> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT eui, supplier_eui, ds_cert, ka_cert, ka_top_up_cert, request_id, updated_at \
             FROM device_supplier_credentials WHERE eui = $1"
        )
        .bind(eui.to_compact())
        .fetch_optional(p)
        .await?
        });
        row.map(|(e, s, ds, ka, top, rid, at)| {
            let col = |c: &'static str, v: &str| {
                v.parse::<Eui64>()
                    .map_err(|_| corrupt("device_supplier_credentials", c, v))
            };
            Ok(DeviceSupplierCredentials {
                eui: col("eui", &e)?,
                supplier: col("supplier_eui", &s)?,
                ds_cert: ds,
                ka_cert: ka,
                ka_top_up_cert: top,
                request_id: rid,
                updated_at: micros_to_ts("device_supplier_credentials", "updated_at", at)?,
            })
        })
        .transpose()
    }

    /// Where registration-data and inventory imports stand (see [`DataImportMarker`]).
    pub async fn data_import_marker(&self) -> Result<DataImportMarker> {
        let (n, last): (i64, Option<i64>) = on_pool!(self, |p| sqlx::query_as(
            "SELECT COUNT(*), MAX(imported_at) FROM import_files WHERE kind IN ($1, $2)"
        )
        .bind(crate::FileKind::Registration.as_str())
        .bind(crate::FileKind::Inventory.as_str())
        .fetch_one(p)
        .await?);
        Ok(DataImportMarker {
            files: n.max(0) as u64,
            last_imported_us: last.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sweeps' queries name kinds and states as SQL literals (so that
    /// the partial indexes of schemas 0008 and 0009 serve): they must be the
    /// enums' stored forms.
    #[test]
    fn literal_kinds_and_states_are_the_stored_forms() {
        assert_eq!(RequestKind::FutureDated.as_str(), "future-dated");
        assert_eq!(RequestKind::Cancellation.as_str(), "cancellation");
        assert_eq!(RequestState::Accepted.as_str(), "accepted");
        assert_eq!(RequestState::Dispatched.as_str(), "dispatched");
    }
}
