//! One module per top-level command.
pub mod audit;
pub mod bench;
pub mod check;
pub mod config;
pub mod data;
pub mod demo;
pub mod duis;
pub mod gbcs;
pub mod inventory;
pub mod migrate;
pub mod pki;
pub mod readiness;
pub mod regdata;
pub mod report;
pub mod serve;
pub mod sim;
