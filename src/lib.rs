//! keyhound: find leaked AWS access keys (and other secrets), prove which are live, say whose
//! they are and what to do. The pipeline runs one way, a module per stage:
//! `source` → `blob` → `detect` → `finding` (+ `suppress`) → `aws` (enrich) → `report`.
//! Each command's file in `command` wires its source to the shared stages in `pipeline`; `cli`
//! parses arguments into a plan.

pub mod aws;
pub mod blob;
pub mod cli;
pub mod command;
pub mod detect;
pub mod finding;
#[doc(hidden)]
pub mod fuzzing;
pub mod pipeline;
pub mod report;
pub mod shard;
pub mod source;
pub mod suppress;
