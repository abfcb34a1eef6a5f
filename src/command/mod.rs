//! One file a command: each wires its source to the shared stages of `pipeline` (detect →
//! findings → suppress → enrich → report). A new input is a new source plus its file here.

pub mod audit;
pub mod git;
pub mod hook;
pub mod image;
pub mod merge;
pub mod remediate;
pub mod rules;
#[cfg(feature = "aws")]
pub mod s3;
pub mod scan;
#[cfg(feature = "aws")]
pub mod snapshot;
