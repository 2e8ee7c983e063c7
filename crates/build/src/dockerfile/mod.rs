//! The Dockerfile language: parsing into [`ast`] (no I/O, no evaluation of
//! build stages). Variable substitution happens in the executor, which knows
//! the ARG/ENV values in scope; [`ast`] keeps words as written.

pub mod ast;
