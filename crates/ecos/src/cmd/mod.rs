//! One module per top-level command.
pub mod config;
pub mod data;
pub mod demo;
pub mod duis;
pub mod gbcs;
pub mod inventory;
pub mod pki;
pub mod regdata;
pub mod serve;
pub mod sim;
