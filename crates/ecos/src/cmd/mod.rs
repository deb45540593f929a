//! One module per top-level command.
pub mod duis;
pub mod gbcs;
pub mod pki;
pub mod config;
pub mod serve;
pub mod regdata;
pub mod inventory;
pub mod data;
pub mod sim;
