//! Fleet benchmark (filled in below).
fn main() {}
