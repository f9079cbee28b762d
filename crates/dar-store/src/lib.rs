//! Placeholder: this crate is being written (issue 4).
