//! PLACEHOLDER until the generator lands.
use crate::cli::VectorsDirArgs;
use crate::output::Failure;
pub(crate) fn generate(_: &VectorsDirArgs) -> Result<(), Failure> {
    Err(Failure::usage("not yet"))
}
pub(crate) fn check(_: &VectorsDirArgs) -> Result<(), Failure> {
    Err(Failure::usage("not yet"))
}
