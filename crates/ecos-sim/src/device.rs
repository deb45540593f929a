//! One simulated SMETS2 device (ESME or GSME): the device side of CS02b.
//!
//! [`Device::handle`] runs the checks of `gbcs-cs02b.md` §11 in order (ACB
//! MAC, recipient, mode ↔ message code, authorising cell, KRP signature,
//! originator, counter), then either executes the command (immediate) or
//! holds it (future-dated) and answers with a signed response in the RTDS
//! layout. [`Device::tick`] executes a held command once its time has come
//! and returns the signed 0x00CB alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ecos_gbcs::cs02b::{RemotePartyRole, RemotePartySeqNumberChange, SpecialistSeqNumber};
use ecos_gbcs::{
    Body, CellDetails, Cra, Cs02bResponse, DlmsDateTime, ExecutionDateTime, ExecutionOutcome,
    FutureDatedAlert, GroupingHeader, LengthStyle, Message, ReadCells, ReadCellsResponse,
    ReplacementMode, ReplacementOutcome, SignatureField, StatusCode, TrustAnchorCell,
    UpdateSecurityCredentials,
};
use ecos_smki::{
    Certificate, Eui64, KeyAgreement, PathError, PathPolicy, Signer, TrustStore, validate_path,
};
use jiff::Timestamp;

use crate::anchor::{Anchor, CELL_COUNT, CellId};
use crate::error::Rejection;

/// ESME or GSME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Electricity smart metering equipment.
    Esme,
    /// Gas smart metering equipment.
    Gsme,
}

/// Number of remote party roles with a stored counter (roles 0..=6).
pub const COUNTER_ROLES: usize = 7;

/// What the response header's date-time carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseTime {
    /// Always this value (the RTDS devices send 2015-01-01 00:00:00).
    Fixed(DlmsDateTime),
    /// The device clock at the time of the response.
    Clock,
}

/// (leaf SHA-256, SHA-256 over the path certificates' hashes).
type PathKey = ([u8; 32], [u8; 32]);

/// Behaviour shared by many devices: the CPV trust store, the path policy
/// and encoding choices. One `Arc<DeviceContext>` serves a whole fleet.
#[derive(Debug)]
pub struct DeviceContext {
    /// Anchors and intermediates for certification path validation of
    /// replacement certificates (the device's root cell, or the issuing CA
    /// as a partial chain where the root is not public).
    pub cpv: TrustStore,
    /// Policies a replacement path must carry.
    pub path_policy: PathPolicy,
    /// The date-time in response headers.
    pub response_time: ResponseTime,
    /// Length style of responses and alerts (`Device` reproduces RTDS bytes).
    pub length_style: LengthStyle,
    /// Whether a cancellation with nothing pending is still answered
    /// `commandAccepted` (default true) (\[P\]).
    pub accept_cancel_without_pending: bool,
    /// The instant time-based CPV checks use: `None` = the device clock at
    /// execution; `Some(t)` pins it (the RTDS vectors need 2025-10-01,
    /// their certificates having expired since).
    pub cpv_time: Option<Timestamp>,
    /// Validated paths: (leaf SHA-256, path SHA-256) → the path's validity
    /// window. Filled on success only; the store is fixed for the context.
    path_cache: Mutex<HashMap<PathKey, (Timestamp, Timestamp)>>,
    /// Anchors built from replacement certificates, by DER SHA-256: every
    /// device that receives the same certificate shares one `Arc<Anchor>`.
    anchor_cache: Mutex<HashMap<[u8; 32], Arc<Anchor>>>,
    /// Parsed certification paths, by SHA-256 over their DERs.
    paths: Mutex<HashMap<[u8; 32], Arc<Vec<Certificate>>>>,
}

/// Entries a context cache holds before it is emptied (bounds memory when
/// every command carries new certificates).
const CACHE_CAP: usize = 4096;

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut h = [0u8; 32];
    h.copy_from_slice(ctx.finish().as_ref());
    h
}

impl DeviceContext {
    /// A context with these CPV anchors and policy; RTDS response time and
    /// device length style.
    pub fn new(cpv: TrustStore, path_policy: PathPolicy) -> Self {
        DeviceContext {
            cpv,
            path_policy,
            response_time: ResponseTime::Fixed(DlmsDateTime::RTDS),
            length_style: LengthStyle::Device,
            accept_cancel_without_pending: true,
            cpv_time: None,
            path_cache: Mutex::new(HashMap::new()),
            anchor_cache: Mutex::new(HashMap::new()),
            paths: Mutex::new(HashMap::new()),
        }
    }

    /// The shared anchor for a certificate DER (parsed once per context);
    /// `None` if it does not parse or has no SKI.
    fn anchor_for(&self, der: &[u8]) -> Option<Arc<Anchor>> {
        let key = sha256(&[der]);
        if let Some(a) = self.anchor_cache.lock().ok()?.get(&key) {
            return Some(a.clone());
        }
        let a = Arc::new(Anchor::from_certificate(Certificate::from_der(der).ok()?).ok()?);
        let mut c = self.anchor_cache.lock().ok()?;
        if c.len() >= CACHE_CAP {
            c.clear();
        }
        Some(c.entry(key).or_insert(a).clone())
    }

    /// The parsed path certificates (those that parse) and their key.
    fn path_for(&self, ders: &[ecos_gbcs::CertificateDer]) -> (Arc<Vec<Certificate>>, [u8; 32]) {
        let parts: Vec<&[u8]> = ders.iter().map(|d| d.as_bytes()).collect();
        let key = sha256(&parts);
        if let Some(p) = self.paths.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return (p, key);
        }
        let p: Arc<Vec<Certificate>> = Arc::new(
            ders.iter()
                .filter_map(|c| Certificate::from_der(c.as_bytes()).ok())
                .collect(),
        );
        if let Ok(mut m) = self.paths.lock() {
            if m.len() >= CACHE_CAP {
                m.clear();
            }
            m.insert(key, p.clone());
        }
        (p, key)
    }

    fn date_time(&self, now: Timestamp) -> DlmsDateTime {
        match self.response_time {
            ResponseTime::Fixed(d) => d,
            ResponseTime::Clock => dlms_date_time(now),
        }
    }

    /// Validate `leaf` with the path certificates at `at`; the result
    /// status for the cell (success, noTrustAnchor or badCertificate).
    fn check_path(
        &self,
        leaf: &Certificate,
        path: &[Certificate],
        path_hash: [u8; 32],
        at: Timestamp,
        time_checks: bool,
    ) -> StatusCode {
        let key = (leaf.sha256(), path_hash);
        if let Ok(cache) = self.path_cache.lock()
            && let Some(&(from, to)) = cache.get(&key)
        {
            return if !time_checks || (from <= at && at <= to) {
                StatusCode::SUCCESS
            } else {
                StatusCode::BAD_CERTIFICATE
            };
        }
        match validate_path(leaf, path, &self.cpv, at, &self.path_policy, false) {
            Ok(p) => {
                let from = p.certificates().iter().map(|c| c.not_before()).max();
                let to = p.certificates().iter().map(|c| c.not_after()).min();
                let (Some(from), Some(to)) = (from, to) else {
                    return StatusCode::BAD_CERTIFICATE;
                };
                if let Ok(mut cache) = self.path_cache.lock() {
                    if cache.len() >= CACHE_CAP {
                        cache.clear();
                    }
                    cache.insert(key, (from, to));
                }
                if !time_checks || (from <= at && at <= to) {
                    StatusCode::SUCCESS
                } else {
                    StatusCode::BAD_CERTIFICATE
                }
            }
            Err(e) => path_status(&e),
        }
    }
}

/// The per-cell status a device reports for a path that does not validate:
/// no chain to a trust anchor gives noTrustAnchor (10, as in the 6.15.1
/// `*_ERROR_*` vectors), anything else badCertificate (5).
pub fn path_status(e: &PathError) -> StatusCode {
    match e {
        PathError::NoTrustAnchor
        | PathError::SelfSigned { .. }
        | PathError::IssuerNotFound { .. }
        | PathError::KeyIdentifierMismatch { .. } => StatusCode::NO_TRUST_ANCHOR,
        _ => StatusCode::BAD_CERTIFICATE,
    }
}

/// A DLMS date-time for an instant (UTC, weekday and deviation unspecified).
pub fn dlms_date_time(t: Timestamp) -> DlmsDateTime {
    let dt = jiff::tz::TimeZone::UTC.to_datetime(t);
    let y = (dt.year() as u16).to_be_bytes();
    DlmsDateTime([
        y[0],
        y[1],
        dt.month() as u8,
        dt.day() as u8,
        0xFF,
        dt.hour() as u8,
        dt.minute() as u8,
        dt.second() as u8,
        0x00,
        0x80,
        0x00,
        0xFF,
    ])
}

/// A future-dated command the device holds.
#[derive(Debug, Clone)]
pub struct PendingCommand {
    /// Who sent it (the alert goes back there).
    pub originator: Eui64,
    /// Its counter.
    pub counter: u64,
    /// The authorising role.
    pub role: RemotePartyRole,
    /// When to execute it.
    pub at: Timestamp,
    /// The execution time as carried.
    pub execution: ExecutionDateTime,
    /// The content.
    pub content: UpdateSecurityCredentials,
}

/// A fault to inject into the next execution: every replacement fails with
/// this status (resourcesBusy 30, insufficientMemory 17, badCertificate 5),
/// as devices that refuse a new credential do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault(pub StatusCode);

/// What the device did with an accepted command.
#[derive(Debug, Clone)]
pub struct Handled {
    /// The signed response (`DF … 40 r‖s`), addressed to the originator.
    pub response: Vec<u8>,
    /// The execution outcome, for an immediate command.
    pub outcome: Option<ExecutionOutcome>,
    /// A future-dated command is now held.
    pub held: bool,
    /// A cancellation removed a held command.
    pub cancelled: bool,
}

/// A simulated ESME or GSME.
///
/// Kept small for fleets: cells are shared `Arc<Anchor>`s, keys are passed
/// in per call (derived from a seed in a fleet), and only a held
/// future-dated command is boxed.
#[derive(Debug, Clone)]
pub struct Device {
    eui: Eui64,
    kind: DeviceKind,
    cells: [Option<Arc<Anchor>>; CELL_COUNT],
    counters: [u64; COUNTER_ROLES],
    supplier_pp_floor: u64,
    alert_counter: u64,
    pending: Option<Box<PendingCommand>>,
}

/// The authorising cell and replaceable cells of a mode (§11).
fn mode_rules(mode: ReplacementMode) -> Option<(CellId, &'static [CellId])> {
    const SUPPLIER: &[CellId] = &[CellId::SupplierDs, CellId::SupplierKa, CellId::SupplierPpKa];
    const COS: &[CellId] = &[CellId::TransCosDs];
    match mode.0 {
        2 => Some((CellId::SupplierDs, SUPPLIER)),
        6 => Some((CellId::TransCosDs, COS)),
        7 => Some((CellId::TransCosDs, SUPPLIER)),
        _ => None,
    }
}

fn to_timestamp(e: &ExecutionDateTime) -> Option<Timestamp> {
    match e {
        ExecutionDateTime::At(dt) => jiff::tz::TimeZone::UTC.to_timestamp(*dt).ok(),
        ExecutionDateTime::Cancel => None,
    }
}

impl Device {
    /// A device with empty cells and zero counters. Its first alert will
    /// carry counter `first_alert_counter`.
    pub fn new(eui: Eui64, kind: DeviceKind, first_alert_counter: u64) -> Self {
        Device {
            eui,
            kind,
            cells: Default::default(),
            counters: [0; COUNTER_ROLES],
            supplier_pp_floor: 0,
            alert_counter: first_alert_counter,
            pending: None,
        }
    }

    /// A copy of this device (sharing its anchors) under another EUI and kind.
    pub fn clone_as(&self, eui: Eui64, kind: DeviceKind) -> Device {
        let mut d = self.clone();
        d.eui = eui;
        d.kind = kind;
        d
    }

    /// The device EUI.
    pub fn eui(&self) -> Eui64 {
        self.eui
    }

    /// ESME or GSME.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// Put an anchor into a cell.
    pub fn set_cell(&mut self, cell: CellId, anchor: Arc<Anchor>) -> &mut Self {
        self.cells[cell.index()] = Some(anchor);
        self
    }

    /// What a cell holds.
    pub fn cell(&self, cell: CellId) -> Option<&Arc<Anchor>> {
        self.cells[cell.index()].as_ref()
    }

    /// The stored counter of a remote party role (0 for roles without one).
    pub fn counter(&self, role: u32) -> u64 {
        self.counters.get(role as usize).copied().unwrap_or(0)
    }

    /// Set the stored counter of a role (as a floor change would).
    pub fn set_counter(&mut self, role: u32, value: u64) -> &mut Self {
        if let Some(c) = self.counters.get_mut(role as usize) {
            *c = value;
        }
        self
    }

    /// The supplier's prepayment top-up floor.
    pub fn supplier_pp_floor(&self) -> u64 {
        self.supplier_pp_floor
    }

    /// The counter the next alert will carry.
    pub fn next_alert_counter(&self) -> u64 {
        self.alert_counter
    }

    /// The held future-dated command, if any.
    pub fn pending(&self) -> Option<&PendingCommand> {
        self.pending.as_deref()
    }

    /// Process a command as received from the WAN (MAC-wrapped).
    ///
    /// `ka` checks the ACB MAC (with the ACB KA cell's public key), `ds`
    /// signs the response. `now` is the device clock; `fault` makes every
    /// replacement of an immediate command fail with its status.
    pub fn handle(
        &mut self,
        bytes: &[u8],
        ds: &dyn Signer,
        ka: &dyn KeyAgreement,
        ctx: &DeviceContext,
        now: Timestamp,
        fault: Option<Fault>,
    ) -> Result<Handled, Rejection> {
        let msg = Message::decode(bytes).map_err(|e| Rejection::Decode(e.to_string()))?;
        let header = msg.frame.header.clone();
        if header.cra != Cra::Command {
            return Err(Rejection::NotACommand(header.cra.code()));
        }
        if let Body::ReadCells(read) = &msg.body {
            return self.read_cells(read, &header, ds, ctx, now);
        }
        let Body::Command(content) = msg.body.clone() else {
            return Err(Rejection::NotACommand(header.cra.code()));
        };
        if header.recipient != self.eui {
            return Err(Rejection::WrongRecipient {
                recipient: header.recipient,
                device: self.eui,
            });
        }
        let mode = content.control.mode;
        let (auth_cell, _) = mode_rules(mode).ok_or(Rejection::UnsupportedMode(mode.0))?;
        // 1. ACB MAC with our KA key and the ACB KA cell.
        if msg.frame.mac.is_none() {
            return Err(Rejection::NoMac);
        }
        let acb = self
            .cell(CellId::AcbKa)
            .and_then(|a| a.public_key.clone())
            .ok_or(Rejection::NoAcbKey)?;
        ecos_gbcs::mac::verify(&msg.frame, ka, &acb).map_err(|_| Rejection::BadMac)?;
        // 2. Authorising cell, signature, originator.
        if content.control.authorising_cell != Some(auth_cell.cell()) {
            return Err(Rejection::WrongAuthorisingCell(
                content
                    .control
                    .authorising_cell
                    .map(|c| format!("{c:?}"))
                    .unwrap_or_else(|| "absent".into()),
                mode.0,
            ));
        }
        let holder = self
            .cell(auth_cell)
            .cloned()
            .ok_or(Rejection::EmptyAuthorisingCell(auth_cell))?;
        let key = holder
            .public_key
            .as_ref()
            .ok_or(Rejection::EmptyAuthorisingCell(auth_cell))?;
        if !matches!(msg.frame.signature, SignatureField::Present(_)) {
            return Err(Rejection::Unsigned);
        }
        msg.frame
            .verify_signature(key)
            .map_err(|_| Rejection::BadSignature)?;
        if header.originator != holder.sui {
            return Err(Rejection::OriginatorMismatch {
                originator: header.originator,
                holder: holder.sui,
            });
        }
        // 3. Counter.
        if content.control.seq_number != header.counter {
            return Err(Rejection::CounterMismatch {
                content: content.control.seq_number,
                header: header.counter,
            });
        }
        let role = auth_cell.role_code();
        let stored = self.counter(role);
        if header.counter <= stored {
            return Err(Rejection::Replay {
                counter: header.counter,
                stored,
                role,
            });
        }
        self.set_counter(role, header.counter);

        // 4./5. Execute, hold or cancel.
        let mut handled = Handled {
            response: Vec::new(),
            outcome: None,
            held: false,
            cancelled: false,
        };
        let response = match content.execution {
            None => {
                let outcome = self.execute(&content, RemotePartyRole(role), ctx, now, fault);
                handled.outcome = Some(outcome.clone());
                Cs02bResponse {
                    execution_outcome: Some(outcome),
                }
            }
            Some(ExecutionDateTime::Cancel) => {
                if self.pending.is_none() && !ctx.accept_cancel_without_pending {
                    return Err(Rejection::NothingToCancel);
                }
                handled.cancelled = self.pending.take().is_some();
                Cs02bResponse {
                    execution_outcome: None,
                }
            }
            Some(exec @ ExecutionDateTime::At(_)) => {
                let at = to_timestamp(&exec).ok_or_else(|| {
                    Rejection::Decode("executionDateTime is not a valid UTC instant".into())
                })?;
                self.pending = Some(Box::new(PendingCommand {
                    originator: header.originator,
                    counter: header.counter,
                    role: RemotePartyRole(role),
                    at,
                    execution: exec,
                    content,
                }));
                handled.held = true;
                Cs02bResponse {
                    execution_outcome: None,
                }
            }
        };
        let gs = response.to_general_signing(&header, ctx.date_time(now), ctx.length_style);
        handled.response = gs.sign(ds).map_err(|e| Rejection::Signing(e.to_string()))?;
        Ok(handled)
    }

    /// Answer a CS02a (0x0008) read: what each cell asked for holds (SUI and SKI), or
    /// trustAnchorNotFound (25) for a cell the device lacks or has empty. [P] The read
    /// needs no MAC and no authorising cell: what a cell holds is public (its certificate
    /// is), the answer is signed with the device's DS key, and no counter moves.
    fn read_cells(
        &self,
        read: &ReadCells,
        header: &GroupingHeader,
        ds: &dyn Signer,
        ctx: &DeviceContext,
        now: Timestamp,
    ) -> Result<Handled, Rejection> {
        if header.recipient != self.eui {
            return Err(Rejection::WrongRecipient {
                recipient: header.recipient,
                device: self.eui,
            });
        }
        let cells = read
            .cells
            .iter()
            .map(
                |c| match CellId::from_cell(c).and_then(|id| self.cell(id)) {
                    Some(a) => CellDetails {
                        cell: *c,
                        status: StatusCode::SUCCESS,
                        sui: Some(a.sui),
                        ski: Some(a.ski.clone()),
                    },
                    None => CellDetails {
                        cell: *c,
                        status: StatusCode(25),
                        sui: None,
                        ski: None,
                    },
                },
            )
            .collect();
        let gs = ReadCellsResponse { cells }.to_general_signing(
            header,
            ctx.date_time(now),
            ctx.length_style,
        );
        Ok(Handled {
            response: gs.sign(ds).map_err(|e| Rejection::Signing(e.to_string()))?,
            outcome: None,
            held: false,
            cancelled: false,
        })
    }

    /// Execute the held future-dated command if its time has come; returns
    /// the signed 0x00CB alert (8F66 if every cell was replaced, else 8F67).
    pub fn tick(
        &mut self,
        ds: &dyn Signer,
        ctx: &DeviceContext,
        now: Timestamp,
        fault: Option<Fault>,
    ) -> Result<Option<Vec<u8>>, Rejection> {
        match &self.pending {
            Some(p) if p.at <= now => {}
            _ => return Ok(None),
        }
        let Some(p) = self.pending.take() else {
            return Ok(None);
        };
        let outcome = self.execute(&p.content, p.role, ctx, now, fault);
        let alert = FutureDatedAlert {
            alert_code: if outcome.all_succeeded() {
                ecos_gbcs::alert::ALERT_FD_ACTIONED
            } else {
                ecos_gbcs::alert::ALERT_FD_FAILED
            },
            execution: p.execution,
            outcome,
        };
        let counter = self.alert_counter;
        self.alert_counter = self.alert_counter.wrapping_add(1);
        let gs = alert
            .to_general_signing(self.eui, p.originator, counter, ctx.length_style)
            .map_err(|e| Rejection::Signing(e.to_string()))?;
        gs.sign(ds)
            .map(Some)
            .map_err(|e| Rejection::Signing(e.to_string()))
    }

    /// Replace the cells (each on its own merits) and apply the floors.
    fn execute(
        &mut self,
        content: &UpdateSecurityCredentials,
        role: RemotePartyRole,
        ctx: &DeviceContext,
        now: Timestamp,
        fault: Option<Fault>,
    ) -> ExecutionOutcome {
        let mode = content.control.mode;
        let allowed: &[CellId] = mode_rules(mode).map(|(_, a)| a).unwrap_or(&[]);
        let (path, path_hash) = ctx.path_for(&content.certification_path);
        let time_checks = content.control.apply_time_based_cpv_checks;
        let cpv_at = ctx.cpv_time.unwrap_or(now);
        let mut outcomes = Vec::with_capacity(content.replacements.len());
        for r in &content.replacements {
            let target = CellId::from_cell(&r.target);
            let existing = target.and_then(|c| self.cell(c).cloned());
            let (ex_sui, ex_ski) = existing
                .as_ref()
                .map(|a| (a.sui, a.ski.clone()))
                .unwrap_or((Eui64([0; 8]), Vec::new()));
            let mut new_anchor = None;
            let status = match target {
                None => StatusCode(25), // trustAnchorNotFound
                Some(c) if !allowed.contains(&c) => StatusCode(127),
                Some(c) => match fault {
                    Some(Fault(s)) => s,
                    None => match ctx.anchor_for(r.certificate.as_bytes()) {
                        None => StatusCode::BAD_CERTIFICATE,
                        Some(anchor) => match anchor.certificate.as_ref() {
                            None => StatusCode::BAD_CERTIFICATE,
                            Some(cert) => {
                                let s = cert_fits_cell(
                                    cert,
                                    c,
                                    ctx,
                                    &path,
                                    path_hash,
                                    cpv_at,
                                    time_checks,
                                );
                                if s == StatusCode::SUCCESS {
                                    new_anchor = Some((c, anchor.clone()));
                                }
                                s
                            }
                        },
                    },
                },
            };
            let (new_sui, new_ski) = match new_anchor {
                Some((c, a)) => {
                    let ids = (a.sui, a.ski.clone());
                    self.cells[c.index()] = Some(a);
                    ids
                }
                None => (ex_sui, ex_ski.clone()),
            };
            outcomes.push(ReplacementOutcome {
                cell: r.target,
                status,
                existing_sui: ex_sui,
                existing_ski: ex_ski,
                replacing_sui: new_sui,
                replacing_ski: new_ski,
            });
        }
        // Floors: [6] for other roles, [4]/[5] for the authoriser itself.
        let mut changes: Vec<RemotePartySeqNumberChange> = content
            .control
            .other_seq_number_changes
            .clone()
            .unwrap_or_default();
        if let Some(floor) = content.control.new_floor_seq_number {
            changes.push(RemotePartySeqNumberChange {
                role,
                floor,
                specialist_floors: content.control.new_specialist_floor_seq_numbers.clone(),
            });
        }
        for ch in &changes {
            self.set_counter(ch.role.0, ch.floor);
            if ch.role == RemotePartyRole::SUPPLIER {
                for s in ch.specialist_floors.iter().flatten() {
                    if *s == SpecialistSeqNumber::prepayment_top_up(s.seq_number) {
                        self.supplier_pp_floor = s.seq_number;
                    }
                }
            }
        }
        ExecutionOutcome {
            seq_number: content.control.seq_number,
            mode,
            seq_number_changes: changes,
            replacement_outcomes: outcomes,
        }
    }

    /// Approximate heap bytes owned by this device alone (not shared anchors).
    pub fn owned_heap_bytes(&self) -> usize {
        self.pending
            .as_ref()
            .map(|p| std::mem::size_of::<PendingCommand>() + p.content.replacements.len() * 600)
            .unwrap_or(0)
    }
}

/// Path validation, then the certificate's OU role and key usage must match
/// the cell.
fn cert_fits_cell(
    cert: &Certificate,
    cell: CellId,
    ctx: &DeviceContext,
    path: &[Certificate],
    path_hash: [u8; 32],
    now: Timestamp,
    time_checks: bool,
) -> StatusCode {
    let s = ctx.check_path(cert, path, path_hash, now, time_checks);
    if s != StatusCode::SUCCESS {
        return s;
    }
    let role_ok = cert.role().map(|r| r.code() as u32) == Some(cell.role_code());
    if !role_ok || cert.key_usage() != cell.certificate_key_usage() {
        return StatusCode::BAD_CERTIFICATE;
    }
    StatusCode::SUCCESS
}

/// The GBCS cell a [`TrustAnchorCell`] names, for reports.
pub fn cell_name(cell: &TrustAnchorCell) -> String {
    match CellId::from_cell(cell) {
        Some(c) => format!("{c:?}"),
        None => format!("{cell:?}"),
    }
}

/// Build a grouping header for tests and tools.
pub fn command_header(
    counter: u64,
    originator: Eui64,
    recipient: Eui64,
    code: u16,
) -> GroupingHeader {
    GroupingHeader {
        cra: Cra::Command,
        counter,
        originator,
        recipient,
        date_time: None,
        message_code: code,
    }
}
