//! In-process tests over real HTTP on loopback.
