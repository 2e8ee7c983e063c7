//! The API machinery: pure functions over JSON objects that the HTTP
//! layer composes (selectors, patches, server-side apply, strict decoding,
//! validation helpers, tables, status errors).

pub mod apply;
pub mod decode;
pub mod fields;
pub mod fieldset;
pub mod labels;
pub mod patch;
pub mod schema;
pub mod strategic;
pub mod table;
pub mod validation;
