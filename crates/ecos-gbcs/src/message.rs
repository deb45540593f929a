//! Decode any CS02b message (command, response, 0x00CB alert), or a CS02a read and its
//! answer, in one call.

use serde::Serialize;

use crate::alert::{FUTURE_DATED_ALERT_CODE, FutureDatedAlert};
use crate::cs02a::{READ_CELLS_CODE, ReadCells, ReadCellsResponse};
use crate::cs02b::{Cs02bCommand, ReplacementMode, UpdateSecurityCredentials};
use crate::error::DecodeError;
use crate::frame::{Cra, Frame};
use crate::response::Cs02bResponse;

/// The typed content of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "content", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Body {
    /// A CS02b command (CRA 1, message code 0x0100..=0x0109).
    Command(UpdateSecurityCredentials),
    /// A device response (CRA 2).
    Response(Cs02bResponse),
    /// A 0x00CB future-dated outcome alert (CRA 3).
    Alert(FutureDatedAlert),
    /// A CS02a (0x0008) read of trust anchor cells (CRA 1).
    ReadCells(ReadCells),
    /// A device's answer to a CS02a read (CRA 2).
    ReadCellsResponse(ReadCellsResponse),
}

/// A decoded message: its frame and typed body.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Header, signature, MAC and byte ranges.
    pub frame: Frame<'a>,
    /// The decoded content.
    pub body: Body,
}

impl<'a> Message<'a> {
    /// Decode a whole message. Commands are strict DER, and their mode must
    /// match the message code; device responses and alerts may carry
    /// non-minimal lengths.
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let frame = Frame::decode(bytes)?;
        let base = frame.content_range().start;
        let code = frame.header.message_code;
        let code_mode = ReplacementMode::from_message_code(code);
        let body = match (frame.header.cra, code_mode) {
            (Cra::Command, _) if code == READ_CELLS_CODE => {
                Body::ReadCells(ReadCells::decode(frame.content(), base)?)
            }
            (Cra::Response, _) if code == READ_CELLS_CODE => {
                Body::ReadCellsResponse(ReadCellsResponse::decode(frame.content(), base)?)
            }
            (Cra::Command, Some(want)) => {
                if frame.header.date_time.is_some() {
                    return Err(DecodeError::BadValue {
                        what: "date-time length",
                        offset: frame.signed_range().start + 28,
                        detail: "12; commands carry no date-time".into(),
                    });
                }
                let c = UpdateSecurityCredentials::decode(frame.content(), base)?;
                if c.control.mode != want {
                    return Err(DecodeError::BadValue {
                        what: "credentialsReplacementMode",
                        offset: base,
                        detail: format!(
                            "{} does not match message code 0x{code:04X}",
                            c.control.mode
                        ),
                    });
                }
                Body::Command(c)
            }
            (Cra::Response, Some(_)) => {
                Body::Response(Cs02bResponse::decode(frame.content(), base)?)
            }
            (Cra::Alert, _) if code == FUTURE_DATED_ALERT_CODE => {
                Body::Alert(FutureDatedAlert::decode(frame.content(), base)?)
            }
            (cra, _) => {
                return Err(DecodeError::BadValue {
                    what: "message code",
                    offset: 0,
                    detail: format!("0x{code:04X} with CRA {cra:?} is not a CS02b message"),
                });
            }
        };
        Ok(Message { frame, body })
    }

    /// The command, if this is one.
    pub fn command(&self) -> Option<Cs02bCommand> {
        match &self.body {
            Body::Command(c) => Some(Cs02bCommand::from_parts(&self.frame.header, c.clone())),
            _ => None,
        }
    }
}
